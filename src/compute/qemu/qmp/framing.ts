/**
 * QMP framing: QEMU ends every message with CRLF and never puts a raw newline inside one (JSON
 * escapes them), so a line is a message. Socket chunks cut lines anywhere — even inside a UTF-8
 * sequence, which a fake server or a future QEMU may send — hence the StringDecoder.
 */
import { StringDecoder } from 'node:string_decoder';

/** A peer that never sends a newline must not grow our memory without bound. */
export const MAX_LINE_CHARS = 64 * 1024 * 1024;

export class LineDecoder {
  private readonly decoder = new StringDecoder('utf8');
  private pending = '';

  /** Returns the complete lines in `chunk` (without line ends, blank lines skipped). */
  push(chunk: Buffer): string[] {
    this.pending += this.decoder.write(chunk);
    const lines: string[] = [];
    let start = 0;
    for (let nl = this.pending.indexOf('\n'); nl !== -1; nl = this.pending.indexOf('\n', start)) {
      const line = this.pending.slice(start, nl).replace(/\r$/, '');
      if (line.trim() !== '') lines.push(line);
      start = nl + 1;
    }
    this.pending = this.pending.slice(start);
    if (this.pending.length > MAX_LINE_CHARS) {
      throw new Error(`QMP line longer than ${MAX_LINE_CHARS} characters without a newline`);
    }
    return lines;
  }

  /** Text received after the last newline; non-empty at close means a truncated message. */
  get remainder(): string {
    return this.pending;
  }
}
