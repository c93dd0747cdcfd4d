// Progress bar on a TTY (bytes, rate, ETA); silent otherwise. Polls a
// TaskHandle's counters, so the native side never calls back into JS.
import { Progress } from './native';

export function formatBytes(n: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(1)} ${units[i]}`;
}

/**
 * 1234567 -> "1,234,567", as toLocaleString('en-US') prints integers, without
 * its cost: the first toLocaleString of a process initializes ICU (13-20 ms,
 * a tenth of a small backup's or restore's wall time).
 */
export function groupDigits(n: number): string {
  if (!Number.isSafeInteger(n)) return n.toLocaleString('en-US');
  const s = String(Math.abs(n)).replace(/\B(?=(\d{3})+$)/g, ',');
  return n < 0 ? `-${s}` : s;
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '--:--';
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

export class ProgressBar {
  private timer: NodeJS.Timeout | null = null;
  private readonly start = Date.now();
  private readonly enabled: boolean;

  constructor(
    private readonly label: string,
    private readonly poll: () => Progress,
    stream: NodeJS.WriteStream = process.stderr,
    enabled = Boolean(stream.isTTY) && !process.env.CI,
  ) {
    this.stream = stream;
    this.enabled = enabled;
    if (this.enabled) this.timer = setInterval(() => this.render(), 200);
  }
  private readonly stream: NodeJS.WriteStream;

  render(): void {
    const p = this.poll();
    const elapsed = (Date.now() - this.start) / 1000;
    const rate = elapsed > 0 ? p.done / elapsed : 0;
    const frac = p.total > 0 ? Math.min(1, p.done / p.total) : 0;
    const width = 24;
    const fill = Math.round(frac * width);
    const eta = rate > 0 && p.total > 0 ? (p.total - p.done) / rate : NaN;
    const line = `${this.label} [${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${(frac * 100).toFixed(0).padStart(3)}% ${formatBytes(p.done)}/${formatBytes(p.total)} ${formatBytes(rate)}/s ETA ${formatDuration(eta)}`;
    this.stream.write(`\r${line.slice(0, (this.stream.columns || 100) - 1)}\x1b[K`);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    if (this.enabled) this.stream.write('\r\x1b[K');
  }
}
