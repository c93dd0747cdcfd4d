import { Command } from 'commander';

export function registerNode(program: Command): void {
  void program;
}
