"""Does adversarial training or typo augmentation make a model robust? Five recipes under three attacks.

    python benchmarks/robustness.py                       # tweets, 32 per class, seeds 0 1 2, all recipes
    python benchmarks/robustness.py --seeds 0 --threads 1 # one process per seed, then run again to collect
    python benchmarks/robustness.py --threads 1 --attacked 200 --eps 0.1 --out benchmarks/results/robustness-a2t.json
                                                          # the A2T table of the robustness notebook (lighter attacks)
    python benchmarks/robustness.py ... --collect         # only write the table from the runs already measured

Recipes (every callback and transform with its library defaults): plain fine-tuning, FGM, FreeLB,
CharNoise augmentation, FGM + CharNoise, and discrete adversarial training (`A2T`: a quarter of each
training batch replaced by the library's own character attack on the current model, from the second
epoch) at two budgets (1 and 2 words changed per text), its combination with FGM, and its word-attack
variant (for the transfer question: does training on synonyms help against typos, and the reverse?);
`A2T typos b2` trains on random typos in the two words the model ranks most important (`TargetedTypos`:
no search, so half of each batch); `plain + TypoCorrector` and `FGM + TypoCorrector` put a word-recognition
front end before the model of that recipe (same seed, same weights), which the attacks query through.
`--corpus bbc_news --n 8` scores BBC's whole 426-article test split; with `--attack-words 64` the attacks and their
clean column use each article's first 64 words (its lead), since ranking a 384-word article's words costs 384 queries; with
`--a2t-words 64 --a2t-max-queries 330` the A2T rows train on attacks of each article's lead in the same way (A2T's `words`), four texts a
step (a 64-word lead costs at most 73 queries at budget 1 and 81 at budget 2; A2T's default bound of 128 fits one). Paired: seed s draws the training sample, shuffles the
batches, seeds the augmentation and initialises the head, for every recipe. Each model is trained
with `fit_one_cycle(DEFAULT_EPOCHS, DEFAULT_LR)` (no per-epoch validation), then
- its clean accuracy is measured on the fixed stratified 2,000-tweet subset of the test split that
  benchmarks/adversarial_accuracy.py uses (so that script can reuse these runs with --reuse), and
- `robustness_report` attacks the same 500 test tweets (drawn with seed 0) for every model: the
  embedding attack (PGD, 5 steps, eps 0.1, 0.3 and 1), the character attack (max_words=0.1) and the
  word attack (max_words=0.2, min_similarity=0.5).
Each finished run is appended to results/robustness-runs.jsonl, so the script resumes (and two
processes with different --seeds or --recipes can share it); delete it to measure afresh. Writes
results/robustness.json from every cached run of the corpus and settings.
"""
import argparse, json, sys, time
from pathlib import Path
import numpy as np, torch

from fmcombo.data import load_corpus, sample_per_class, fm_dls
from fmcombo.edits import word_prefix
from fmcombo.learner import fm_learner, DEFAULT_EPOCHS, DEFAULT_LR
from fmcombo.adversarial import FGM, FreeLB
from fmcombo.augment import CharNoise
from fmcombo.robustness import robustness_report, EmbeddingAttack, CharAttack, WordSubstitution, A2T, TypoCorrector, Corrected, tokenizer_words

RESULTS = Path(__file__).parent/'results'
RECIPES = {  # name: kw -> (text_tfms, callbacks), built fresh for each run; kw: the A2T options of the command line (--a2t-words, --a2t-max-queries)
    'plain': lambda kw: ([], []),
    'FGM': lambda kw: ([], [FGM()]),
    'FreeLB': lambda kw: ([], [FreeLB()]),
    'CharNoise': lambda kw: ([CharNoise()], []),
    'FGM + CharNoise': lambda kw: ([CharNoise()], [FGM()]),
    # not run by default (name them with --recipes): is CharNoise's default p too low to defend against typos?
    'CharNoise p=0.3': lambda kw: ([CharNoise(p=0.3)], []),
    'FGM + CharNoise p=0.3': lambda kw: ([CharNoise(p=0.3)], [FGM()]),
    # discrete adversarial training on the library's own attacks
    'A2T char b1': lambda kw: ([], [A2T('char', budget=1, **kw)]),
    'A2T char b2': lambda kw: ([], [A2T('char', budget=2, **kw)]),
    'A2T char b1 + FGM': lambda kw: ([], [A2T('char', budget=1, **kw), FGM()]),
    'A2T word b1': lambda kw: ([], [A2T('word', budget=1, **kw)]),
    # typos where the model looks, without the attack's search: half of each batch, two words a text (cheaper per text, so more texts)
    'A2T typos b2': lambda kw: ([], [A2T('typos', budget=2, share=0.5, **{'max_queries': 256, **kw})]),
    'A2T typos b2 + FGM': lambda kw: ([], [A2T('typos', budget=2, share=0.5, **{'max_queries': 256, **kw}), FGM()]),
}
# a front end, not training: the model of the base recipe (the same seed trains the same weights) behind a `TypoCorrector`
# that knows the words of the corpus's training texts (their labels unused) and the backbone's whole words
FRONT = {'plain + TypoCorrector': 'plain', 'FGM + TypoCorrector': 'FGM'}
MAIN = ['plain', 'FGM', 'FreeLB', 'CharNoise', 'FGM + CharNoise']
ROBUST = ['plain', 'FGM', 'FGM + CharNoise', 'A2T char b1', 'A2T char b2', 'A2T char b1 + FGM', 'A2T typos b2 + FGM', 'A2T word b1']
EPS = [0.1, 0.3, 1.0]

def test_subset(ds, size:int):
    "The fixed stratified subset of the test split of benchmarks/adversarial_accuracy.py (the whole split when it is smaller: BBC's 445 articles)"
    if size >= len(ds['test']): return ds['test']
    return ds['test'].train_test_split(test_size=size, stratify_by_column='label', seed=0)['test']

def a2t_kw(a) -> dict:
    "The A2T options of the command line, as A2T's arguments (empty: its defaults)"
    return {k: v for k, v in dict(words=a.a2t_words or None, max_queries=a.a2t_max_queries).items() if v}

def train(sample, recipe:str, seed:int, kw:dict):
    tfms, cbs = RECIPES[recipe](kw)
    learn = fm_learner(fm_dls(sample, bs=16, seed=seed, text_tfms=tfms or None), cbs=cbs)
    t0, c0 = time.perf_counter(), time.process_time()
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(DEFAULT_EPOCHS, DEFAULT_LR)
    return learn, time.perf_counter() - t0, time.process_time() - c0   # CPU time: the cost on a shared machine (one thread)

def a2t_cost(learn) -> dict:
    "What the attacks inside training cost: seconds, queries per attacking step, texts replaced"
    cb = next((c for c in learn.cbs if isinstance(c, A2T)), None)
    if cb is None: return {}
    steps = [h for h in cb.history]
    return dict(a2t_seconds=round(cb.seconds, 1), a2t_steps=len(steps), a2t_queries_per_step=round(float(np.mean([h['queries'] for h in steps])), 1),
                a2t_texts_replaced=sum(len(h['texts']) for h in steps))

_TRAINED = {}   # (base recipe, seed) -> the last trained learner and its times: a front-end row reuses its base's model

def one_run(ds, test, recipe, seed, a):
    key = (FRONT.get(recipe, recipe), seed)
    if key not in _TRAINED:
        _TRAINED.clear()   # one model at a time in memory
        _TRAINED[key] = train(sample_per_class(ds['train'], a.n, seed=seed), key[0], seed, a2t_kw(a))
    learn, train_s, train_cpu = _TRAINED[key]
    front = {}
    if recipe in FRONT:
        t0 = time.perf_counter()
        learn = Corrected(learn, TypoCorrector(ds['train']['text'], tokenizer_words()))
        front = dict(front_end_seconds=round(time.perf_counter() - t0, 1))
    eps = a.eps
    _, probs = learn.predict_texts(test['text'], bs=64)
    clean = float((probs.argmax(1) == np.array(test['label'])).mean())
    t0 = time.perf_counter()
    atk = ds['test'] if not a.attack_words else ds['test'].map(lambda r: {'text': word_prefix(r['text'], a.attack_words)})
    rep = robustness_report(learn, atk, attacks=[EmbeddingAttack(eps=eps, steps=5), CharAttack(max_words=0.1),
                                                        WordSubstitution(max_words=0.2, min_similarity=0.5)],
                            n=a.attacked, seed=0, progress=False)
    emb = rep.runs['embedding'].table['accuracy']
    return dict(recipe=recipe, seed=seed, corpus=a.corpus, n_per_class=a.n, epochs=DEFAULT_EPOCHS, lr=DEFAULT_LR,
                accuracy=clean, test_size=len(test), attack_words=a.attack_words, train_seconds=round(train_s, 1), train_cpu_seconds=round(train_cpu, 1),
                attack_seconds=round(time.perf_counter() - t0, 1), attacked=a.attacked, clean_attacked=float(rep['clean accuracy'].iloc[0]),
                eps=eps, embedding={f'{e:g}': float(emb[e]) for e in eps},
                char={k: float(v) for k, v in rep.loc['char'].items()}, word={k: float(v) for k, v in rep.loc['word'].items()},
                **a2t_cost(getattr(learn, 'wrapped', learn)), **front, **_a2t_options(recipe, a))

def _a2t_options(recipe, a) -> dict:
    "An A2T row's options from the command line, in its record (a row at the defaults records none, as before they existed)"
    return {f'a2t_{k}': v for k, v in a2t_kw(a).items()} if recipe.startswith('A2T') else {}

def _ms(xs): return f"{np.mean(xs):.1%} ± {np.std(xs, ddof=1):.1%}" if len(xs) > 1 else f"{xs[0]:.1%}"

def table(runs, recipes, eps=EPS):
    "Mean ± std over seeds of each recipe; paired differences to plain on clean accuracy and under each attack"
    rows = []
    base = {r['seed']: r for r in runs if r['recipe'] == 'plain'}
    for rec in recipes:
        rs = sorted((r for r in runs if r['recipe'] == rec), key=lambda r: r['seed'])
        if not rs: continue
        what = 'tweets' if rs[0]['corpus'] == 'tweet_sentiment' else 'texts'
        row = {'recipe': rec, 'seeds': len(rs), f"clean ({rs[0]['test_size']:,} {what})": _ms([r['accuracy'] for r in rs]),
               f"clean ({rs[0]['attacked']} attacked)": _ms([r['clean_attacked'] for r in rs])}
        for e in eps: row[f'embedding ε={e:g}'] = _ms([r['embedding'][f'{e:g}'] for r in rs])
        row['char attack'] = _ms([r['char']['accuracy under attack'] for r in rs])
        row['word attack'] = _ms([r['word']['accuracy under attack'] for r in rs])
        paired = [r for r in rs if r['seed'] in base]
        if rec != 'plain' and paired:
            d = lambda f: _ms([f(r) - f(base[r['seed']]) for r in paired])
            row['Δ clean vs plain (paired)'] = d(lambda r: r['accuracy'])
            row['Δ char attack vs plain (paired)'] = d(lambda r: r['char']['accuracy under attack'])
            row['Δ word attack vs plain (paired)'] = d(lambda r: r['word']['accuracy under attack'])
            row['Δ embedding ε=0.1 vs plain (paired)'] = d(lambda r: r['embedding']['0.1'])
            t = 'train_cpu_seconds' if all('train_cpu_seconds' in r for r in paired + [base[r['seed']] for r in paired]) else 'train_seconds'
            row['train time / plain (paired)'] = f"{np.mean([r[t]/base[r['seed']][t] for r in paired]):.2f}×"
        row['char success rate'] = _ms([r['char']['attack success rate'] for r in rs])
        row['word success rate'] = _ms([r['word']['attack success rate'] for r in rs])
        row['train s/run'] = round(float(np.mean([r['train_seconds'] for r in rs])), 1)
        if all('train_cpu_seconds' in r for r in rs): row['train CPU s/run'] = round(float(np.mean([r['train_cpu_seconds'] for r in rs])), 1)
        if all('a2t_seconds' in r for r in rs):
            row['A2T queries/step'] = round(float(np.mean([r['a2t_queries_per_step'] for r in rs])), 1)
            row['A2T texts replaced/run'] = round(float(np.mean([r['a2t_texts_replaced'] for r in rs])), 1)
        row['attack s/run'] = round(float(np.mean([r['attack_seconds'] for r in rs])), 1)
        rows.append(row)
    return rows

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--corpus', default='tweet_sentiment')
    ap.add_argument('--n', type=int, default=32, help='training examples per class')
    ap.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2, 3, 4])
    ap.add_argument('--recipes', nargs='+', default=ROBUST, choices=list(RECIPES) + list(FRONT), help=f'default: {ROBUST}; the first table also had {MAIN}')
    ap.add_argument('--test-size', type=int, default=2000, help='stratified test subset for clean accuracy')
    ap.add_argument('--attacked', type=int, default=500, help='test texts attacked')
    ap.add_argument('--attack-words', type=int, default=0, help="attack the first this many words of each test text (0: whole texts); "
                    "BBC's articles (384 words on average) cost a query per word to rank")
    ap.add_argument('--a2t-words', type=int, default=0, help="A2T rows attack each training text's first this many words (A2T's `words`; 0: whole texts)")
    ap.add_argument('--a2t-max-queries', type=int, default=0, help="A2T rows' bound on the texts sent to the model per step (0: each row's default)")
    ap.add_argument('--eps', type=float, nargs='+', default=EPS, help='radii of the embedding attack')
    ap.add_argument('--threads', type=int, default=None, help='torch threads (one process per seed: 1)')
    ap.add_argument('--collect', action='store_true', help='train nothing: write the table from the runs already in the cache')
    ap.add_argument('--cache', default=str(RESULTS/'robustness-runs.jsonl'))
    ap.add_argument('--out', default=str(RESULTS/'robustness.json'))
    a = ap.parse_args()
    for opt in ('a2t_words', 'a2t_max_queries', 'attack_words'):
        if getattr(a, opt) < 0: ap.error(f"--{opt.replace('_', '-')} takes an integer >= 0 (0: the default); got {getattr(a, opt)}")
    if a.threads: torch.set_num_threads(a.threads)
    ds = load_corpus(a.corpus)
    test = test_subset(ds, a.test_size)
    cache = Path(a.cache); cache.parent.mkdir(parents=True, exist_ok=True)
    def cached():
        if not cache.exists(): return {}
        rs = [json.loads(l) for l in cache.read_text().splitlines() if l.strip()]
        return {(r['recipe'], r['seed']): r for r in rs if (r['corpus'], r['n_per_class'], r['lr'], r['epochs'], r['attacked'], r['test_size'],
                r.get('eps', EPS), r.get('attack_words', 0)) == (a.corpus, a.n, DEFAULT_LR, DEFAULT_EPOCHS, a.attacked, len(test), a.eps, a.attack_words)
                and {k: r[k] for k in ('a2t_words', 'a2t_max_queries') if k in r} == _a2t_options(r['recipe'], a)}
    for seed in a.seeds:                       # seeds outer, recipes inner: a partial run stays paired
        for recipe in a.recipes:
            if a.collect or (recipe, seed) in cached(): continue
            r = one_run(ds, test, recipe, seed, a)
            with cache.open('a') as f: f.write(json.dumps(r) + '\n')
            print(f"{recipe:16s} seed {seed}: clean {r['accuracy']:.1%}, char {r['char']['accuracy under attack']:.1%}, "
                  f"word {r['word']['accuracy under attack']:.1%}, embedding {r['embedding']} ({r['train_seconds']:.0f}+{r['attack_seconds']:.0f}s)", flush=True)
    runs = sorted(cached().values(), key=lambda r: (r['seed'], (list(RECIPES) + list(FRONT)).index(r['recipe'])))
    res = dict(corpus=a.corpus, n_per_class=a.n, seeds=sorted({r['seed'] for r in runs}), epochs=DEFAULT_EPOCHS, lr=DEFAULT_LR,
               test_size=len(test), n_attacked=a.attacked, attack_words=a.attack_words, attacks=dict(embedding=f'PGD, 5 steps, eps {a.eps}', char='CharAttack(max_words=0.1)',
               word='WordSubstitution(max_words=0.2, min_similarity=0.5)'), a2t_options=a2t_kw(a), table=table(runs, list(RECIPES) + list(FRONT), a.eps), runs=runs,
               command='python benchmarks/robustness.py ' + ' '.join(sys.argv[1:]))
    Path(a.out).write_text(json.dumps(res, indent=2))
    for row in res['table']: print(row)
    print(f'wrote {a.out}')

if __name__ == '__main__': main()
