"""What batching is worth to an attack: queries per second of the character attack, batched vs one text per call.

    python benchmarks/attack_speed.py                  # default backbone, 40 test tweets, 2 repetitions

The model is the default backbone fine-tuned on tweets, 32 per class (seed 0, `fit_one_cycle(DEFAULT_EPOCHS,
DEFAULT_LR)`). The same `CharAttack(max_words=0.1)` (same seed, so the same candidates) runs on the same test
tweets with a `Victim` that sends every step's candidate texts in batches of 64, and with one that sends one
text per call (`batched=False`, what a loop over texts with `learn.predict` does). The two modes run interleaved
`--reps` times; queries per second are total queries over total seconds of each mode. The two modes must
produce the same attacked texts. Writes benchmarks/results/attack_speed.json.
"""
import argparse, json, sys, time
from pathlib import Path
import numpy as np, torch

from fmcombo.data import load_corpus, sample_per_class, fm_dls
from fmcombo.learner import fm_learner, DEFAULT_EPOCHS, DEFAULT_LR
from fmcombo.robustness import Victim, CharAttack

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--texts', type=int, default=40, help='test tweets attacked')
    ap.add_argument('--reps', type=int, default=2)
    ap.add_argument('--bs', type=int, default=64)
    ap.add_argument('--threads', type=int, default=None)
    ap.add_argument('--out', default=str(Path(__file__).parent/'results'/'attack_speed.json'))
    a = ap.parse_args()
    if a.threads: torch.set_num_threads(a.threads)
    ds = load_corpus('tweet_sentiment')
    learn = fm_learner(fm_dls(sample_per_class(ds['train'], 32, seed=0), seed=0))
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(DEFAULT_EPOCHS, DEFAULT_LR)
    test = ds['test'].shuffle(seed=0).select(range(a.texts))
    texts, y = test['text'], np.array(test['label'])
    tot = {m: dict(queries=0, seconds=0.) for m in ('batched', 'one text per call')}
    outs = {}
    learn.predict_texts(texts[:8])   # warm-up
    for rep in range(a.reps):
        for mode, v in (('batched', Victim(learn, bs=a.bs)), ('one text per call', Victim(learn, bs=a.bs, batched=False))):
            t0 = time.perf_counter()
            run = CharAttack(max_words=0.1).run(v, texts, y, seed=0, progress=False)
            dt = time.perf_counter() - t0
            tot[mode]['queries'] += v.queries; tot[mode]['seconds'] += dt
            outs.setdefault(mode, [r.perturbed for r in run.records])
            print(f'rep {rep}: {mode:18s} {v.queries} queries in {dt:.1f}s = {v.queries/dt:.0f} queries/s', flush=True)
    same = outs['batched'] == outs['one text per call']
    base = tot['one text per call']['queries'] / tot['one text per call']['seconds']
    rows = [dict(mode=m, queries=t['queries'], seconds=round(t['seconds'], 1), queries_per_s=round(t['queries']/t['seconds'], 1),
                 speedup=round(t['queries']/t['seconds']/base, 2)) for m, t in tot.items()]
    res = dict(backbone='default (sentence-transformers/all-MiniLM-L6-v2)', attack='CharAttack(max_words=0.1)', texts=a.texts,
               bs=a.bs, reps=a.reps, torch_threads=torch.get_num_threads(), same_attacked_texts=same, table=rows,
               command='python benchmarks/attack_speed.py ' + ' '.join(sys.argv[1:]))
    out = Path(a.out); out.parent.mkdir(parents=True, exist_ok=True); out.write_text(json.dumps(res, indent=2))
    for r in rows: print(r)
    print(f'same attacked texts: {same}; wrote {out}')

if __name__ == '__main__': main()
