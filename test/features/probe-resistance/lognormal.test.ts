import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { type Rng, seededRng } from "../../../src/core/random.js";
import { MAX_DELAY_MS, normalizeBounds, sampleBoundedLogNormal } from "../../../src/features/probe-resistance/lognormal.js";

function samples(floor: number, ceiling: number, n: number, seed = 42): number[] {
  const rng = seededRng(seed);
  return Array.from({ length: n }, () => sampleBoundedLogNormal(floor, ceiling, rng));
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return (s[Math.floor((s.length - 1) / 2)]! + s[Math.ceil((s.length - 1) / 2)]!) / 2;
}

function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(q * (s.length - 1))]!;
}

const scripted = (values: number[]): Rng => {
  let i = 0;
  return { next: () => values[i++ % values.length]! };
};

describe("bounded log-normal sampler", () => {
  test("every sample lies in [floor, ceiling] for a range of configurations", () => {
    for (const [floor, ceiling] of [
      [1, 2],
      [100, 1000],
      [50, 5000],
      [0.5, 10],
      [999, 1000],
    ] as const) {
      for (const x of samples(floor, ceiling, 10_000, floor * 7 + ceiling)) {
        assert.ok(x >= floor && x <= ceiling, `${x} outside [${floor}, ${ceiling}]`);
      }
    }
  });

  test("the median of 10,000 samples is within 5% of the geometric mean", () => {
    for (const [floor, ceiling, seed] of [
      [100, 1000, 1],
      [20, 2000, 2],
      [1, 16, 3],
    ] as const) {
      const gm = Math.sqrt(floor * ceiling);
      const m = median(samples(floor, ceiling, 10_000, seed));
      assert.ok(Math.abs(m - gm) / gm < 0.05, `median ${m} vs geometric mean ${gm}`);
    }
  });

  test("sigma = ln(ceiling/floor)/4.65: about 98-99% of draws fall inside before clamping", () => {
    const xs = samples(100, 1000, 20_000, 9);
    const clamped = xs.filter((x) => x === 100 || x === 1000).length / xs.length;
    // A sigma twice as wide would clamp ~25%; half as wide would clamp almost nothing.
    assert.ok(clamped > 0.005 && clamped < 0.035, `clamped fraction ${clamped}`);
    // The distribution is skewed right in linear terms: the mean is above the median.
    const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
    assert.ok(mean > median(xs));
  });

  test("floor = 0 keeps a uniform draw on [0, ceiling]", () => {
    const xs = samples(0, 800, 10_000, 5);
    assert.ok(xs.every((x) => x >= 0 && x <= 800));
    assert.ok(Math.abs(quantile(xs, 0.25) - 200) < 20, `q25 ${quantile(xs, 0.25)}`);
    assert.ok(Math.abs(median(xs) - 400) < 20, `median ${median(xs)}`);
    assert.ok(Math.abs(quantile(xs, 0.75) - 600) < 20, `q75 ${quantile(xs, 0.75)}`);
    // A log-normal anchored at 1 would put its median near sqrt(800) ~ 28.
  });

  test("floor = ceiling is a fixed delay", () => {
    assert.deepEqual(new Set(samples(250, 250, 1000)), new Set([250]));
    assert.deepEqual(new Set(samples(0, 0, 100)), new Set([0]));
  });

  test("inverted and non-finite configurations stay bounded and never throw", () => {
    const rng = seededRng(3);
    for (let i = 0; i < 1000; i++) {
      assert.equal(sampleBoundedLogNormal(500, 100, rng), 500, "inverted: the fixed delay floor");
      assert.equal(sampleBoundedLogNormal(200, Number.NaN, rng), 200, "NaN ceiling collapses onto the floor");
      const nanFloor = sampleBoundedLogNormal(Number.NaN, 300, rng);
      assert.ok(nanFloor >= 0 && nanFloor <= 300, "NaN floor counts as 0");
      const both = sampleBoundedLogNormal(Number.NaN, Number.NaN, rng);
      assert.equal(both, 0);
      const inf = sampleBoundedLogNormal(10, Number.POSITIVE_INFINITY, rng);
      assert.equal(inf, 10, "an infinite ceiling is not a bound");
      const huge = sampleBoundedLogNormal(10, 1e12, rng);
      assert.ok(huge >= 10 && huge <= MAX_DELAY_MS, "capped at MAX_DELAY_MS");
      const neg = sampleBoundedLogNormal(-50, -10, rng);
      assert.equal(neg, 0);
    }
    assert.deepEqual(normalizeBounds(-1, Number.NEGATIVE_INFINITY), { floorMs: 0, ceilingMs: 0 });
    assert.deepEqual(normalizeBounds(2e9, 3e9), { floorMs: MAX_DELAY_MS, ceilingMs: MAX_DELAY_MS });
  });

  test("a broken Rng (NaN, 1, negative, Infinity) cannot push a sample out of bounds", () => {
    for (const bad of [Number.NaN, 1, -0.5, Number.POSITIVE_INFINITY, 0, 0.9999999999]) {
      const rng = scripted([bad]);
      for (const [f, c] of [
        [100, 1000],
        [0, 1000],
      ] as const) {
        const x = sampleBoundedLogNormal(f, c, rng);
        assert.ok(Number.isFinite(x) && x >= f && x <= c, `${x} from rng ${bad}`);
      }
    }
  });

  test("extreme uniform draws clamp exactly to the bounds", () => {
    // u1 -> 1 - 0.999999 = 1e-6 gives z ~ +5.3 (cos 0 = 1); u2 = 0.5 gives cos(pi) = -1.
    assert.equal(sampleBoundedLogNormal(100, 1000, scripted([0.999999, 0])), 1000);
    assert.equal(sampleBoundedLogNormal(100, 1000, scripted([0.999999, 0.5])), 100);
  });
});
