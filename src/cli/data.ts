import { Command } from 'commander';

export function registerData(program: Command): void {
  void program;
}
