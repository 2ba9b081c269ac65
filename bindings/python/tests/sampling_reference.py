"""A plain-Python reference of the sampler that include/glm5.h specifies ("Sampling" block).

Written from the header alone, in float64 with Python ints for the generator, so that the tests
can reproduce the library's tokens exactly and its logprobs to rounding. Slow and simple on
purpose (the vocabulary of the fixtures is 320).

    d = Distribution(logits, temperature=0.7, top_k=40, top_p=0.9, min_p=0.05)
    token = d.draw(seed, pos)           # pos = the session's token count before the new token
    d.raw_logprob(token), d.scaled_logprob(token), d.processed_logprob(token), d.top(5)
"""

from __future__ import annotations

import math
from typing import List, Sequence, Tuple

import numpy as np

M32 = 0xFFFFFFFF
PHILOX_M0, PHILOX_M1 = 0xD2511F53, 0xCD9E8D57
PHILOX_W0, PHILOX_W1 = 0x9E3779B9, 0xBB67AE85


def philox4x32_10(counter: Sequence[int], key: Sequence[int]) -> Tuple[int, int, int, int]:
    """Philox4x32-10 (Salmon et al., SC'11; Random123's philox4x32 with 10 rounds): 10 rounds of
    (hi0, lo0) = M0 * c0, (hi1, lo1) = M1 * c2, c = (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0),
    the key bumped by the Weyl constants after every round but the last."""
    c0, c1, c2, c3 = (int(v) & M32 for v in counter)
    k0, k1 = (int(v) & M32 for v in key)
    for r in range(10):
        p0, p1 = PHILOX_M0 * c0, PHILOX_M1 * c2
        c0, c1, c2, c3 = (p1 >> 32) ^ c1 ^ k0, p1 & M32, (p0 >> 32) ^ c3 ^ k1, p0 & M32
        if r < 9:
            k0, k1 = (k0 + PHILOX_W0) & M32, (k1 + PHILOX_W1) & M32
    return c0, c1, c2, c3


def uniform(seed: int, pos: int) -> float:
    """The header's u for (seed, pos): a double in [0, 1) from the first two Philox words."""
    x0, x1, _, _ = philox4x32_10((pos & M32, pos >> 32, 0, 0), (seed & M32, seed >> 32))
    return ((x1 << 32 | x0) >> 11) * 2.0**-53


def _f32(v: float) -> float:
    """A parameter as the library sees it: the float field of glm5_sampling_params, as a double."""
    return float(np.float32(v))


def _logsumexp(values: List[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    m = max(finite)
    total = 0.0
    for v in finite:
        total += math.exp(v - m)
    return m + math.log(total)


def _rank_order(values: List[float]) -> List[int]:
    """Descending, equal values by lower id, NaN last."""
    return sorted(range(len(values)), key=lambda i: (1, 0.0, i) if math.isnan(values[i]) else (0, -values[i], i))


class Distribution:
    """Steps 1-7 of the header for one row of float32 logits; draw() is step 8."""

    def __init__(self, logits, temperature=1.0, top_k=0, top_p=1.0, min_p=0.0):
        self.l = [float(v) for v in np.asarray(logits, dtype=np.float32)]
        self.temperature = _f32(temperature)
        self.lse_raw = _logsumexp(self.l)
        self.greedy = self.temperature == 0
        if self.greedy:
            self.order = _rank_order(self.l)
            return
        t = self.temperature
        s = [v / t for v in self.l]  # 1. temperature
        self.s = s
        self.m = max(v for v in s if not math.isnan(v))  # 2. distribution
        w = [0.0 if math.isnan(v) else math.exp(v - self.m) for v in s]
        total = 0.0
        for wi in w:  # ascending id order
            total += wi
        self.w, self.total = w, total
        p = [wi / total for wi in w]
        self.order = order = _rank_order(self.l)  # 3. rank order: by logit (the order of s)
        n_keep = len(order)
        if top_k > 0:  # 4. top-k
            n_keep = min(n_keep, top_k)
        top_p = _f32(top_p)
        if top_p < 1:  # 5. top-p: keep a token while the sum before it is < top_p
            before, count = 0.0, 0
            for i in order:
                if not before < top_p:
                    break
                count += 1
                before += p[i]
            n_keep = min(n_keep, count)
        min_p = _f32(min_p)
        if min_p > 0:  # 6. min-p: w_i >= min_p (p_i >= min_p * max p; the best token has w = 1)
            count = 0
            while count < len(order) and w[order[count]] >= min_p:
                count += 1
            n_keep = min(n_keep, count)
        self.kept = sorted(order[:n_keep])  # 7. renormalise, ascending id order
        big_w = 0.0
        for i in self.kept:
            big_w += w[i]
        self.big_w = big_w

    def draw(self, seed: int, pos: int) -> int:
        """8. The token at absolute position `pos` for `seed` (greedy: the argmax)."""
        if self.greedy:
            return self.order[0]
        target = uniform(seed, pos) * self.big_w
        c = 0.0
        for i in self.kept:
            c += self.w[i]
            if c > target:
                return i
        return [i for i in self.kept if self.w[i] > 0][-1]

    def raw_logprob(self, token: int) -> float:
        return self.l[token] - self.lse_raw

    def scaled_logprob(self, token: int) -> float:
        if self.greedy:
            return self.raw_logprob(token)
        return self.s[token] - (self.m + math.log(self.total))

    def processed_logprob(self, token: int) -> float:
        if self.greedy:
            return 0.0
        return (self.s[token] - self.m) - math.log(self.big_w)

    def top(self, n: int) -> Tuple[List[int], List[float]]:
        """The n best tokens in rank order and their scaled logprobs."""
        ids = self.order[:n]
        return ids, [self.scaled_logprob(i) for i in ids]
