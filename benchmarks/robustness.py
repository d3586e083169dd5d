"""Does adversarial training or typo augmentation make a model robust? Five recipes under three attacks.

    python benchmarks/robustness.py                       # tweets, 32 per class, seeds 0 1 2, all recipes
    python benchmarks/robustness.py --seeds 0 --threads 1 # one process per seed, then run again to collect

Recipes (every callback and transform with its library defaults): plain fine-tuning, FGM, FreeLB,
CharNoise augmentation, FGM + CharNoise. Paired: seed s draws the training sample, shuffles the
batches, seeds the augmentation and initialises the head, for every recipe. Each model is trained
with `fit_one_cycle(DEFAULT_EPOCHS, DEFAULT_LR)` (no per-epoch validation), then
- its clean accuracy is measured on the fixed stratified 2,000-tweet subset of the test split that
  benchmarks/adversarial_accuracy.py uses (so that script can reuse these runs with --reuse), and
- `robustness_report` attacks the same 500 test tweets (drawn with seed 0) for every model: the
  embedding attack (PGD, 5 steps, eps 0.1, 0.3 and 1), the character attack (max_words=0.1) and the
  word attack (max_words=0.2, min_similarity=0.5).
Each finished run is appended to results/robustness-runs.jsonl, so the script resumes; delete it to
measure afresh. Writes results/robustness.json.
"""
import argparse, json, sys, time
from pathlib import Path
import numpy as np, torch

from fmcombo.data import load_corpus, sample_per_class, fm_dls
from fmcombo.learner import fm_learner, DEFAULT_EPOCHS, DEFAULT_LR
from fmcombo.adversarial import FGM, FreeLB
from fmcombo.augment import CharNoise
from fmcombo.robustness import robustness_report, EmbeddingAttack, CharAttack, WordSubstitution

RESULTS = Path(__file__).parent/'results'
RECIPES = {  # name: (text_tfms, callbacks), built fresh for each run
    'plain': lambda: ([], []),
    'FGM': lambda: ([], [FGM()]),
    'FreeLB': lambda: ([], [FreeLB()]),
    'CharNoise': lambda: ([CharNoise()], []),
    'FGM + CharNoise': lambda: ([CharNoise()], [FGM()]),
    # not run by default (name them with --recipes): is CharNoise's default p too low to defend against typos?
    'CharNoise p=0.3': lambda: ([CharNoise(p=0.3)], []),
    'FGM + CharNoise p=0.3': lambda: ([CharNoise(p=0.3)], [FGM()]),
}
MAIN = ['plain', 'FGM', 'FreeLB', 'CharNoise', 'FGM + CharNoise']
EPS = [0.1, 0.3, 1.0]

def test_subset(ds, size:int):
    "The fixed stratified subset of the test split of benchmarks/adversarial_accuracy.py"
    return ds['test'].train_test_split(test_size=size, stratify_by_column='label', seed=0)['test']

def train(sample, recipe:str, seed:int):
    tfms, cbs = RECIPES[recipe]()
    learn = fm_learner(fm_dls(sample, bs=16, seed=seed, text_tfms=tfms or None), cbs=cbs)
    t0 = time.perf_counter()
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(DEFAULT_EPOCHS, DEFAULT_LR)
    return learn, time.perf_counter() - t0

def one_run(ds, test, recipe, seed, a):
    learn, train_s = train(sample_per_class(ds['train'], a.n, seed=seed), recipe, seed)
    _, probs = learn.predict_texts(test['text'], bs=64)
    clean = float((probs.argmax(1) == np.array(test['label'])).mean())
    t0 = time.perf_counter()
    rep = robustness_report(learn, ds['test'], attacks=[EmbeddingAttack(eps=EPS, steps=5), CharAttack(max_words=0.1),
                                                        WordSubstitution(max_words=0.2, min_similarity=0.5)],
                            n=a.attacked, seed=0, progress=False)
    emb = rep.runs['embedding'].table['accuracy']
    return dict(recipe=recipe, seed=seed, corpus=a.corpus, n_per_class=a.n, epochs=DEFAULT_EPOCHS, lr=DEFAULT_LR,
                accuracy=clean, test_size=len(test), train_seconds=round(train_s, 1), attack_seconds=round(time.perf_counter() - t0, 1),
                attacked=a.attacked, clean_attacked=float(rep['clean accuracy'].iloc[0]),
                embedding={f'{e:g}': float(emb[e]) for e in EPS},
                char={k: float(v) for k, v in rep.loc['char'].items()}, word={k: float(v) for k, v in rep.loc['word'].items()})

def _ms(xs): return f"{np.mean(xs):.1%} ± {np.std(xs, ddof=1):.1%}" if len(xs) > 1 else f"{xs[0]:.1%}"

def table(runs, recipes):
    "Mean ± std over seeds of each recipe; paired differences to plain under the character attack and on clean accuracy"
    rows = []
    base = {r['seed']: r for r in runs if r['recipe'] == 'plain'}
    for rec in recipes:
        rs = sorted((r for r in runs if r['recipe'] == rec), key=lambda r: r['seed'])
        if not rs: continue
        row = {'recipe': rec, 'seeds': len(rs), 'clean (2,000 tweets)': _ms([r['accuracy'] for r in rs]),
               'clean (500 attacked)': _ms([r['clean_attacked'] for r in rs])}
        for e in EPS: row[f'embedding ε={e:g}'] = _ms([r['embedding'][f'{e:g}'] for r in rs])
        row['char attack'] = _ms([r['char']['accuracy under attack'] for r in rs])
        row['word attack'] = _ms([r['word']['accuracy under attack'] for r in rs])
        paired = [r for r in rs if r['seed'] in base]
        if rec != 'plain' and paired:
            row['Δ clean vs plain (paired)'] = _ms([r['accuracy'] - base[r['seed']]['accuracy'] for r in paired])
            row['Δ char attack vs plain (paired)'] = _ms([r['char']['accuracy under attack'] - base[r['seed']]['char']['accuracy under attack'] for r in paired])
        row['char success rate'] = _ms([r['char']['attack success rate'] for r in rs])
        row['train s/run'] = round(float(np.mean([r['train_seconds'] for r in rs])), 1)
        row['attack s/run'] = round(float(np.mean([r['attack_seconds'] for r in rs])), 1)
        rows.append(row)
    return rows

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--corpus', default='tweet_sentiment')
    ap.add_argument('--n', type=int, default=32, help='training examples per class')
    ap.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    ap.add_argument('--recipes', nargs='+', default=MAIN, choices=list(RECIPES))
    ap.add_argument('--test-size', type=int, default=2000, help='stratified test subset for clean accuracy')
    ap.add_argument('--attacked', type=int, default=500, help='test texts attacked')
    ap.add_argument('--threads', type=int, default=None, help='torch threads (one process per seed: 1)')
    ap.add_argument('--cache', default=str(RESULTS/'robustness-runs.jsonl'))
    ap.add_argument('--out', default=str(RESULTS/'robustness.json'))
    a = ap.parse_args()
    if a.threads: torch.set_num_threads(a.threads)
    ds = load_corpus(a.corpus)
    test = test_subset(ds, a.test_size)
    cache = Path(a.cache); cache.parent.mkdir(parents=True, exist_ok=True)
    def cached():
        if not cache.exists(): return {}
        rs = [json.loads(l) for l in cache.read_text().splitlines() if l.strip()]
        return {(r['recipe'], r['seed']): r for r in rs if (r['corpus'], r['n_per_class'], r['lr'], r['epochs'], r['attacked'], r['test_size'])
                == (a.corpus, a.n, DEFAULT_LR, DEFAULT_EPOCHS, a.attacked, len(test))}
    for seed in a.seeds:                       # seeds outer, recipes inner: a partial run stays paired
        for recipe in a.recipes:
            if (recipe, seed) in cached(): continue
            r = one_run(ds, test, recipe, seed, a)
            with cache.open('a') as f: f.write(json.dumps(r) + '\n')
            print(f"{recipe:16s} seed {seed}: clean {r['accuracy']:.1%}, char {r['char']['accuracy under attack']:.1%}, "
                  f"word {r['word']['accuracy under attack']:.1%}, embedding {r['embedding']} ({r['train_seconds']:.0f}+{r['attack_seconds']:.0f}s)", flush=True)
    runs = sorted(cached().values(), key=lambda r: (r['seed'], list(RECIPES).index(r['recipe'])))
    res = dict(corpus=a.corpus, n_per_class=a.n, seeds=sorted({r['seed'] for r in runs}), epochs=DEFAULT_EPOCHS, lr=DEFAULT_LR,
               test_size=len(test), n_attacked=a.attacked, attacks=dict(embedding=f'PGD, 5 steps, eps {EPS}', char='CharAttack(max_words=0.1)',
               word='WordSubstitution(max_words=0.2, min_similarity=0.5)'), table=table(runs, list(RECIPES)), runs=runs,
               command='python benchmarks/robustness.py ' + ' '.join(sys.argv[1:]))
    Path(a.out).write_text(json.dumps(res, indent=2))
    for row in res['table']: print(row)
    print(f'wrote {a.out}')

if __name__ == '__main__': main()
