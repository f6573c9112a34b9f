import { expect, it } from 'vitest';
import { outputFrameText } from '../../src/supervisor/mailbox.js';
import { decodeOutputs, encodeOutput } from '../../src/supervisor/output-batch.js';

const ID = '0b7c0d52-8d2e-4f4e-9d36-1c8c1f0f2a11';

function roundTrip(records: Array<{ key: number; offset: number; text: string }>) {
  const batch = records
    .map(({ key, offset, text }) => {
      const ascii = /^[\x00-\x7f]*$/.test(text);
      return encodeOutput(key, offset, Buffer.byteLength(text), outputFrameText(ID, offset, text), ascii);
    })
    .join('');
  const out: Array<{ key: number; offset: number; length: number; frame: string }> = [];
  decodeOutputs(batch, (key, m) => out.push({ key, offset: m.offset, length: m.length, frame: Buffer.from(m.frame).toString('utf8') }));
  return out;
}

it('carries output frames, ASCII or not, as the bytes the viewers get, in order', () => {
  const records = [
    { key: 3, offset: 0, text: 'ping 1\r\n' },
    { key: 7, offset: 2 ** 40, text: 'aé✓😀 "quoted" \\ \u001b[31mred\u001b[0m, a colon: and a comma,' },
    { key: 3, offset: 8, text: '' },
    { key: 12, offset: 9, text: 'x'.repeat(70_000) },
  ];
  const out = roundTrip(records);
  expect(out.map((o) => o.key)).toEqual([3, 7, 3, 12]);
  for (const [i, r] of records.entries()) {
    expect(out[i]!.offset).toBe(r.offset);
    expect(out[i]!.length).toBe(Buffer.byteLength(r.text));
    expect(out[i]!.frame).toBe(outputFrameText(ID, r.offset, r.text));
    expect(JSON.parse(out[i]!.frame).data).toBe(r.text);
  }
});

it('refuses a malformed batch instead of looping or inventing frames', () => {
  const good = encodeOutput(1, 0, 2, '{"a":1}', true);
  const noop = () => {};
  expect(() => decodeOutputs(good.slice(0, -1), noop)).toThrow(/malformed/);
  expect(() => decodeOutputs('1,2,3', noop)).toThrow(/malformed/);
  expect(() => decodeOutputs('x,0,0,1,0:', noop)).toThrow(/malformed/);
});
