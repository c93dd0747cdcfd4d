// SIGINT / SIGTERM during a long native task: ask it to cancel (it throws
// GUTS_CANCELLED, the command cleans up and exits 130) instead of dying
// with half-written files.
import { TaskHandle } from '../native';

export function cancelOnSignals(): { track(h: TaskHandle<unknown>): void; dispose(): void } {
  const handles: Array<TaskHandle<unknown>> = [];
  const onSignal = () => handles.forEach((h) => h.cancel());
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return {
    track: (h) => handles.push(h),
    dispose: () => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}
