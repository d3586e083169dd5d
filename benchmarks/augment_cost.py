"""Cost of the augmentation methods on the default backbone, measured side by side in one run.

    python benchmarks/augment_cost.py                 # BBC News, bs 16, max_len 128

Training step time (from `before_batch` to `after_batch`, process CPU time and wall time, median over steps) of plain training and
of EmbedMix, TMix, NEFTune and R-Drop, interleaved: every repeat runs one epoch of each method on
the same batches, and the first repeat is a warm-up that is not counted. Text transforms: time to
transform one batch of training texts and tokenise them again (the plain loader reuses ids tokenised
once), as a share of the plain step time. Goals: transforms ≤ 2 % of a step; EmbedMix and NEFTune
≤ 1.05× plain; R-Drop ≤ 2.1×. Writes benchmarks/results/augment_cost.json.
"""
import argparse, json, statistics, sys, time
from pathlib import Path
import torch
from fastai.callback.core import Callback

from fmcombo.data import load_corpus, sample_per_class, fm_dls
from fmcombo.learner import fm_learner, DEFAULT_LR
from fmcombo.edits import EmbeddingSynonyms
from fmcombo.augment import EDA, AEDA, CharNoise, EmbedMix, TMix, NEFTune, RDrop

class StepTimer(Callback):
    "Wall time of each training batch, from the first `before_batch` to the last `after_batch`"
    order = -1000
    def before_batch(self): self.t0, self.c0 = time.perf_counter(), time.process_time()
class StepEnd(Callback):
    order = 1000
    def after_batch(self):
        t = self.learn.step_timer
        t.times.append(time.perf_counter() - t.t0); t.cpu_times.append(time.process_time() - t.c0)

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--repeats', type=int, default=4, help='epochs per method, interleaved; the first is a warm-up')
    ap.add_argument('--bs', type=int, default=16)
    ap.add_argument('--max-len', type=int, default=128)
    ap.add_argument('--threads', type=int, default=None)
    a = ap.parse_args()
    if a.threads: torch.set_num_threads(a.threads)
    ds = load_corpus('bbc_news')
    sample = sample_per_class(ds['train'], 10, seed=0).select(range(3*a.bs))   # three full batches
    methods = {'plain': lambda: [], 'EmbedMix': lambda: [EmbedMix()], 'TMix': lambda: [TMix()],
               'NEFTune': lambda: [NEFTune()], 'R-Drop': lambda: [RDrop()]}
    # one learner (memory is tight on a shared machine); each method's callbacks are added for its epoch
    learn = fm_learner(fm_dls(sample, bs=a.bs, seed=0, max_len=a.max_len), cbs=[StepTimer(), StepEnd()])
    steps, cpu = {m: [] for m in methods}, {m: [] for m in methods}
    for rep in range(a.repeats):
        for m, make in methods.items():
            cbs = make()
            learn.add_cbs(cbs)
            learn.step_timer.times, learn.step_timer.cpu_times = [], []
            with learn.no_bar(), learn.no_logging(): learn.fit(1, DEFAULT_LR)
            learn.remove_cbs(cbs)
            if rep: steps[m] += learn.step_timer.times; cpu[m] += learn.step_timer.cpu_times
            print(f'repeat {rep} {m:9s} {statistics.median(learn.step_timer.times):.3f} s/step wall, {statistics.median(learn.step_timer.cpu_times):.3f} s CPU', flush=True)
    med = {m: statistics.median(v) for m, v in steps.items()}
    cmed = {m: statistics.median(v) for m, v in cpu.items()}
    step_rows = [{'method': m, 'steps': len(steps[m]), 'CPU s/step (median)': round(cmed[m], 4), 'ratio to plain (CPU)': round(cmed[m]/cmed['plain'], 3),
                  'wall s/step (median)': round(med[m], 4), 'ratio to plain (wall)': round(med[m]/med['plain'], 3),
                  'goal': {'EmbedMix': '≤ 1.05', 'NEFTune': '≤ 1.05', 'R-Drop': '≤ 2.1'}.get(m, '')} for m in methods]
    # text transforms: transform a batch of texts and tokenise it again, as the training loader does
    dls = learn.dls
    texts = [dls.train.dataset.tfm_text(i) for i in range(a.bs)]   # what the training loader hands the transforms: cut after 2*max_len words
    tfms = {'EDA': EDA(synonyms=EmbeddingSynonyms(), seed=0), 'AEDA': AEDA(seed=0), 'CharNoise': CharNoise(seed=0)}
    for t in tfms.values(): [t(x) for x in texts]      # warm-up: loads the synonym source and looks these texts' words up once, as the first epoch does
    tfm_rows = []
    def per_batch(f, n=30):   # process CPU time: the transforms are single-threaded Python
        ts = []
        for _ in range(n):
            t0 = time.process_time(); f(); ts.append(time.process_time() - t0)
        return statistics.median(ts)
    tok_only = per_batch(lambda: dls.train.dataset.encode(texts))
    for name, t in tfms.items():
        s = per_batch(lambda: dls.train.dataset.encode([t(x) for x in texts]))
        tfm_rows.append({'transform': name, 'per batch s (transform + tokenise)': round(s, 5), 'of which tokenise s': round(tok_only, 5),
                         'share of plain step (CPU)': round(s/cmed['plain'], 4), 'goal': '≤ 0.02'})
    res = dict(corpus='bbc_news', bs=a.bs, max_len=a.max_len, torch_threads=torch.get_num_threads(), repeats=a.repeats,
               steps=step_rows, text_tfms=tfm_rows, command='python benchmarks/augment_cost.py ' + ' '.join(sys.argv[1:]),
               note='interleaved in one run on a shared CPU (2 cores, several benchmarks at once), one torch thread: process CPU time is the reliable figure, wall time is given too; medians over the counted steps')
    out = Path(__file__).parent/'results'/'augment_cost.json'
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2))
    for r in step_rows: print(f"{r['method']:9s} {r['CPU s/step (median)']:.3f} CPU s/step  {r['ratio to plain (CPU)']:.3f}x (wall {r['ratio to plain (wall)']:.3f}x)  {r['goal']}")
    for r in tfm_rows: print(f"{r['transform']:9s} {r['per batch s (transform + tokenise)']*1e3:.1f} ms/batch  {r['share of plain step (CPU)']:.2%} of a step")
    print(f'wrote {out}')

if __name__ == '__main__': main()
