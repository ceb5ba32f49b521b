/**
 * LineBatch: log lines reach the buffered destination in batches of at
 * least minChars, in order, and nothing is held back past a flush.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { LineBatch, type BufferedDestination } from "../../../src/gateway/log/line-batch.js";

function recorder(): BufferedDestination & { writes: string[]; flushes: number; syncFlushes: number } {
  return {
    writes: [],
    flushes: 0,
    syncFlushes: 0,
    write(text: string) {
      this.writes.push(text);
      return true;
    },
    flush() {
      this.flushes++;
    },
    flushSync() {
      this.syncFlushes++;
    },
  };
}

describe("LineBatch", () => {
  test("lines wait until minChars have gathered, then go on as one write, in order", () => {
    const t = recorder();
    const b = new LineBatch(t, 10);
    b.write("aaaa\n");
    assert.deepEqual(t.writes, []);
    b.write("bbbb\n");
    assert.deepEqual(t.writes, ["aaaa\nbbbb\n"]);
    b.write("c\n");
    assert.deepEqual(t.writes, ["aaaa\nbbbb\n"]);
  });

  test("a line longer than minChars goes on at once", () => {
    const t = recorder();
    const b = new LineBatch(t, 4);
    b.write("0123456789\n");
    assert.deepEqual(t.writes, ["0123456789\n"]);
  });

  test("flush and flushSync pass on what is gathered, then flush the destination", () => {
    const t = recorder();
    const b = new LineBatch(t, 4096);
    b.write("one\n");
    b.flush();
    assert.deepEqual(t.writes, ["one\n"]);
    assert.equal(t.flushes, 1);
    b.write("two\n");
    b.flushSync();
    assert.deepEqual(t.writes, ["one\n", "two\n"]);
    assert.equal(t.syncFlushes, 1);
    // Nothing gathered: no empty write.
    b.flush();
    assert.deepEqual(t.writes, ["one\n", "two\n"]);
  });
});
