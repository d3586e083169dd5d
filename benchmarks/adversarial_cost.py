"""What each adversarial callback costs: time per training step relative to plain training.

    python benchmarks/adversarial_cost.py                 # default backbone, batch 16 x 128 tokens
    python benchmarks/adversarial_cost.py --rounds 5 --steps 4

One learner on the default backbone, fed the same batch throughout: 16 BBC News articles
truncated to exactly 128 tokens (no padding); each arm's callbacks are passed to `fit(cbs=...)`. The arms are timed interleaved: in each round,
every arm runs `--steps` optimizer steps of a real `fit` in turn; a callback times each step from
`before_batch` to `after_batch` (forward, backward, the extra passes, the optimizer step). Each
learner first runs one untimed warm-up step. Ratios are medians over all kept steps, divided by
plain training's median. Writes benchmarks/results/adversarial_cost.json.
"""
import argparse, json, sys, time
from pathlib import Path
import numpy as np, torch
from fastai.callback.core import Callback, CancelFitException

from fmcombo.data import load_corpus, fm_dls
from fmcombo.learner import fm_learner
from fmcombo.adversarial import FGM, PGD, FreeLB, SMART, AWP

# name: (callbacks, ceiling we set, as a multiple of plain training's step time)
ARMS = {'plain': (lambda: [], 1.0),
        'FGM': (lambda: [FGM()], 2.0),
        'PGD-3': (lambda: [PGD(steps=3)], 3 + 1.1),
        'FreeLB-3': (lambda: [FreeLB(steps=3)], 3 + 0.1),
        'SMART': (lambda: [SMART(steps=1)], 2.7),
        'AWP': (lambda: [AWP(start_epoch=0)], 2.2)}

class StepTimer(Callback):
    "Seconds of each training step, `before_batch` to `after_batch`"
    order = -100
    def __init__(self): self.times,self.warm = [],False
    def before_batch(self): self.t0 = time.perf_counter()
    def after_batch(self):
        if not self.training: return
        dt = time.perf_counter() - self.t0
        if self.warm: self.times.append(dt)
        self.warm = True   # the learner's first step (optimizer state, first allocations) is warm-up

class StopAfter(Callback):
    "End the fit after `n` training steps"
    order = 100
    def __init__(self, n): self.n = n
    def before_fit(self): self.i = 0
    def after_batch(self):
        self.i += 1
        if self.i >= self.n: raise CancelFitException()

def summary(timers):
    "Median step time of each arm and its ratio to plain training's"
    base = float(np.median(timers['plain'].times))
    rows = []
    for name, (_, goal) in ARMS.items():
        med = float(np.median(timers[name].times))
        rows.append(dict(arm=name, seconds_per_step=round(med, 3), ratio=round(med/base, 2), goal=goal,
                         meets_goal=bool(med/base <= goal), steps_timed=len(timers[name].times)))
    return rows

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--bs', type=int, default=16)
    ap.add_argument('--tokens', type=int, default=128)
    ap.add_argument('--steps', type=int, default=1, help='timed optimizer steps per arm per round')
    ap.add_argument('--rounds', type=int, default=3)
    ap.add_argument('--backbone', default=None, help='None: the default backbone')
    ap.add_argument('--out', default=str(Path(__file__).parent/'results'/'adversarial_cost.json'))
    ap.add_argument('--threads', type=int, default=1, help='torch threads (1: on a shared machine more threads make it much slower)')
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    texts = load_corpus('bbc_news')['train'].shuffle(seed=0).select(range(a.bs*a.steps))
    learn = fm_learner(fm_dls(texts, backbone=a.backbone, bs=a.bs, max_len=a.tokens, seed=0))   # one model: memory is shared too
    arms = {name: cbs() for name, (cbs, _) in ARMS.items()}
    timers = {name: StepTimer() for name in ARMS}
    x, mask, _ = learn.dls.one_batch()
    assert tuple(x.shape) == (a.bs, a.tokens) and bool(mask.all()), f'batches are {tuple(x.shape)}, not {a.bs} x {a.tokens} without padding'
    for name in ARMS:   # warm-up: one untimed step each
        with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-5, cbs=arms[name] + [timers[name], StopAfter(1)])
    out = Path(a.out); out.parent.mkdir(parents=True, exist_ok=True)
    for r in range(a.rounds):
        for name in ARMS:
            with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-5, cbs=arms[name] + [timers[name]])
            print(f'round {r}: {name:9s} {np.median(timers[name].times[-a.steps:]):.2f} s/step', flush=True)
        rows = summary(timers)
        res = dict(backbone=a.backbone or 'default (sentence-transformers/all-MiniLM-L6-v2)', batch=f'{a.bs} x {a.tokens} tokens',
                   rounds=r + 1, steps_per_round=a.steps, torch_threads=torch.get_num_threads(), table=rows,
                   note='medians over interleaved rounds on a shared CPU; ratios are relative to plain training in the same run',
                   command='python benchmarks/adversarial_cost.py ' + ' '.join(sys.argv[1:]))
        out.write_text(json.dumps(res, indent=2))   # after every round: an interrupted run still leaves its results
    print('\n' + '\n'.join(f"{r['arm']:9s} {r['seconds_per_step']:6.2f} s/step  {r['ratio']:.2f}x  (goal <= {r['goal']:.1f}x: {'yes' if r['meets_goal'] else 'NO'})" for r in rows))
    print(f'wrote {out}')

if __name__ == '__main__': main()
