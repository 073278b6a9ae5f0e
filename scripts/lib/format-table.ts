// Shared by the benchmarks: they print through a `log` callback, so a table is returned as lines.

/** console.table's box layout, as lines for `log`. */
export function formatTable(rows: readonly Record<string, unknown>[]): string[] {
  if (rows.length === 0) return [];
  const keys = Object.keys(rows[0]);
  const cells = rows.map((row) => keys.map((key) => String(row[key] ?? '')));
  const widths = keys.map((key, i) => Math.max(key.length, ...cells.map((row) => row[i].length)) + 2);
  const pad = (text: string, i: number) =>
    text.padStart(Math.ceil((widths[i] + text.length) / 2)).padEnd(widths[i]);
  const rule = (left: string, mid: string, right: string) =>
    left + widths.map((w) => '─'.repeat(w)).join(mid) + right;
  return [
    rule('┌', '┬', '┐'),
    `│${keys.map(pad).join('│')}│`,
    rule('├', '┼', '┤'),
    ...cells.map((row) => `│${row.map(pad).join('│')}│`),
    rule('└', '┴', '┘'),
  ];
}
