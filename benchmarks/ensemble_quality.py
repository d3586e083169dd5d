"""What ensembles are worth: a 5-seed ensemble vs its members, each combination method, snapshot, SWA, soups and a distilled student.

    python benchmarks/ensemble_quality.py --corpus bbc_news --n 8 --draws 0
    python benchmarks/ensemble_quality.py --corpus tweet_sentiment --n 32 --draws 0

Members come from benchmarks/ensemble_members.py (same cache, trained here when missing): one per
seed on the draw's training sample, reused by every combination method. `weighted`, `stacking`
and the greedy soup are fitted on the draw's validation sample (disjoint from the training sample,
taken from the training split). Snapshot, SWA and the distilled student train once per draw with
seed 0 (the same batches and head as member 0). The transfer-set student also learns from
--transfer unlabelled texts of the training split (disjoint from both samples) labelled by the
ensemble (`transfer_set`), for --transfer-epochs epochs; its control (`distill_transfer_one`) is the
same student taught by member 0 alone, which tells the teacher's share of the gain from the
unlabelled texts' share. Each finished step is cached beside the members,
so a rerun resumes. Writes (merging corpora) benchmarks/results/ensemble_quality.json.
"""
import argparse, json, sys, time
from pathlib import Path
import numpy as np, torch

sys.path.insert(0, str(Path(__file__).parent))
from ensemble_members import splits, get_member, member_dir, CACHE, BACKBONE
from fmcombo.data import fm_dls, load_corpus, labelled_texts
from fmcombo.learner import fm_learner, DEFAULT_EPOCHS, DEFAULT_LR
from fmcombo.augment import EDA
from fmcombo.ensemble import Ensemble, METHODS, SnapshotEnsemble, SWA, soup, Distill, transfer_set, classification_scores

OUT = Path(__file__).parent/'results'/'ensemble_quality.json'
KEYS = ('accuracy', 'macro_f1', 'log_loss', 'ece')

def scores(learn_or_ens, test):
    e = learn_or_ens if isinstance(learn_or_ens, Ensemble) else Ensemble([learn_or_ens])
    return {k: v for k, v in e.evaluate(test).items() if k in KEYS}

def cached(path:Path, fn):
    "fn()'s JSON result, computed once and kept at `path` (with --collect: None where it was not computed)"
    if path.exists(): return json.loads(path.read_text())
    if COLLECT: return None
    t0 = time.perf_counter(); res = fn(); res['seconds'] = time.perf_counter() - t0
    path.write_text(json.dumps(res)); return res

COLLECT = False   # --collect: tabulate what earlier runs computed, compute nothing new
STEPS = ('combos', 'soups', 'snapshot', 'swa', 'distill', 'distill_aug', 'distill_transfer', 'distill_transfer_one')

def transfer_texts(corpus, n, draw, size):
    "`size` unlabelled texts of the training split, disjoint from the draw's training and validation samples (seed 2000+draw)"
    train, valid, _ = splits(corpus, n, draw)
    taken = set(train['text']) | set(valid['text'])
    rest = [t for t in load_corpus(corpus)['train']['text'] if t not in taken]
    return [rest[i] for i in np.sort(np.random.default_rng(2000+draw).choice(len(rest), min(size, len(rest)), replace=False))]

def one_draw(corpus, n, draw, seeds, cache, steps=STEPS, transfer=1000, transfer_epochs=3):
    train, valid, test = splits(corpus, n, draw)
    root = member_dir(cache, corpus, n, draw, 0).parent
    got = [get_member(cache, corpus, n, draw, s, train) for s in seeds]
    members, secs = [m for m, _ in got], [s for _, s in got]
    print(f'{corpus} draw {draw}: {len(members)} members ({np.mean(secs):.0f}s training each)', flush=True)
    def combos():
        ens = Ensemble(members)
        texts, y = labelled_texts(test, ens.vocab)
        L = ens.member_logits(texts)
        torch.save(dict(logits=L, targets=torch.as_tensor(y), vocab=ens.vocab), root/'test_logits.pt')   # for the notebook's plots
        res = {'members': [classification_scores(l.softmax(-1), y, len(ens.vocab)) for l in L]}
        for m in METHODS:
            e = Ensemble(members, m, valid=valid)
            r = e.evaluate(test, logits=L)
            res[m] = {k: r[k] for k in KEYS}
            if m == 'mean_probs': res['disagreement'] = r['disagreement']
            if m == 'weighted': res['weights'] = e.weights.round(3).tolist()
        return res
    res = cached(root/'combos.json', combos) if 'combos' in steps or (root/'combos.json').exists() else {}
    print('  combinations done', flush=True)
    def greedy():
        s = soup(members, 'greedy', valid=valid)
        return dict(scores(s, test), kept=s.soup_members)
    if 'soups' in steps:
        res['uniform soup'] = cached(root/'soup_uniform.json', lambda: scores(soup(members), test))
        res['greedy soup'] = cached(root/'soup_greedy.json', greedy)
        print('  soups done', flush=True)
    def snapshot():
        cb = SnapshotEnsemble(cycles=5)
        learn = fm_learner(fm_dls(train, bs=16, seed=seeds[0], backbone=BACKBONE), cbs=[cb])
        t0 = time.perf_counter()
        with learn.no_bar(), learn.no_logging(): learn.fit(DEFAULT_EPOCHS, DEFAULT_LR)
        t = time.perf_counter() - t0
        return dict(ensemble=scores(cb.ensemble(), test), last=scores(learn, test), train_seconds=t)
    if 'snapshot' in steps: res['snapshot'] = cached(root/'snapshot.json', snapshot); print('  snapshot done', flush=True)
    def swa():
        learn = fm_learner(fm_dls(train, bs=16, seed=seeds[0], backbone=BACKBONE), cbs=[SWA(start_epoch=DEFAULT_EPOCHS//2)])
        t0 = time.perf_counter()
        with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(DEFAULT_EPOCHS, DEFAULT_LR)
        return dict(scores(learn, test), train_seconds=time.perf_counter() - t0)
    if 'swa' in steps: res['swa'] = cached(root/'swa.json', swa); print('  SWA done', flush=True)
    def distill():
        learn = fm_learner(fm_dls(train, bs=16, seed=seeds[0], backbone=BACKBONE), cbs=[Distill(Ensemble(members), T=2., weight=0.5)])
        t0 = time.perf_counter()
        with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(DEFAULT_EPOCHS, DEFAULT_LR)
        return dict(scores(learn, test), train_seconds=time.perf_counter() - t0)
    if 'distill' in steps: res['distilled'] = cached(root/'distill.json', distill); print('  distillation done', flush=True)
    def distill_aug():   # the teacher also labels EDA-augmented texts: a transfer set larger than the 32 (or 8) examples
        learn = fm_learner(fm_dls(train, bs=16, seed=seeds[0], backbone=BACKBONE, text_tfms=[EDA(seed=seeds[0])]),
                           cbs=[Distill(Ensemble(members), T=2., weight=0.5)])
        t0 = time.perf_counter()
        with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(DEFAULT_EPOCHS, DEFAULT_LR)
        return dict(scores(learn, test), train_seconds=time.perf_counter() - t0)
    if 'distill_aug' in steps: res['distilled, EDA'] = cached(root/'distill_aug.json', distill_aug); print('  distillation with EDA done', flush=True)
    def distill_transfer(ens):   # the teacher labels unlabelled texts of the task: a transfer set
        dls = transfer_set(fm_dls(train, bs=16, seed=seeds[0], backbone=BACKBONE), ens, transfer_texts(corpus, n, draw, transfer))
        learn = fm_learner(dls, cbs=[Distill(ens, T=2., weight=0.5)])
        t0 = time.perf_counter()
        with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(transfer_epochs, DEFAULT_LR)
        return dict(scores(learn, test), train_seconds=time.perf_counter() - t0, transfer=len(dls.train_ds.texts) - len(train), epochs=transfer_epochs)
    if 'distill_transfer' in steps:
        res['distilled, transfer set'] = cached(root/f'distill_transfer{transfer}-e{transfer_epochs}.json', lambda: distill_transfer(Ensemble(members)))
        print('  distillation on a transfer set done', flush=True)
    if 'distill_transfer_one' in steps:   # the control: the same transfer set labelled by member 0 alone (self-training, one round)
        res['distilled from member 0, transfer set'] = cached(root/f'distill_transfer{transfer}-e{transfer_epochs}-member0.json',
                                                              lambda: distill_transfer(Ensemble(members[:1])))
        print('  distillation from member 0 on the transfer set done', flush=True)
    return {k: v for k, v in res.items() if v is not None}, secs

def fmt(xs, pct=True):
    xs = np.asarray(xs, dtype=float)
    f = (lambda v: f'{100*v:.1f}') if pct else (lambda v: f'{v:.3f}')
    return f(xs.mean()) + (f' ± {f(xs.std(ddof=1))}' if len(xs) > 1 else '')

def _kept(d, key='distilled') -> str:
    "Student's gain over the mean member, as a share of the mean_probs ensemble's"
    mean = np.mean([m['accuracy'] for m in d['members']])
    gain = d['mean_probs']['accuracy'] - mean
    student = d[key]['accuracy'] - mean
    if gain <= 0: return f'n/a (the ensemble gained nothing; student {100*student:+.1f} points over the mean member)'
    return f"{student / gain:.0%} (student {100*student:+.1f}, ensemble {100*gain:+.1f} points over the mean member)"

def table(draws:list, n_members:int):
    "Rows: mean ± std over draws (members: over members and draws)"
    rows = []
    def row(name, get, note='', train=None, infer=None):
        vals = [get(d) for d in draws]
        vals = [v for v in vals if v is not None]
        if not vals: return
        flat = [x for v in vals for x in (v if isinstance(v, list) else [v])]
        rows.append({'model': name, 'draws': len(vals), **{k: fmt([x[k] for x in flat], k != 'log_loss') for k in KEYS},
                     'training (member runs)': train, 'inference (member passes)': infer, 'note': note})
    row('single member (mean ± std over members)', lambda d: d.get('members'), train=1, infer=1)
    row('member 0 (seed 0: pairs with snapshot, SWA, student)', lambda d: d['members'][0] if 'members' in d else None, train=1, infer=1)
    for m in METHODS:
        row(f'{n_members}-member ensemble, {m}', lambda d, m=m: d.get(m), train=n_members, infer=n_members,
            note='fitted on the validation sample' if m in ('weighted', 'stacking') else '')
    row('uniform soup', lambda d: d.get('uniform soup'), train=n_members, infer=1)
    row('greedy soup', lambda d: d.get('greedy soup'), train=n_members, infer=1, note='kept members ' + '; '.join(str(d['greedy soup']['kept']) for d in draws if 'greedy soup' in d))
    row('snapshot ensemble (5 cycles, one run)', lambda d: d.get('snapshot', {}).get('ensemble'), train=1, infer=5)
    row('snapshot: last snapshot alone', lambda d: d.get('snapshot', {}).get('last'), train=1, infer=1)
    row('SWA (epochs 5-9 of fit_one_cycle)', lambda d: d.get('swa'), train=1, infer=1)
    row('distilled student (T=2, weight 0.5)', lambda d: d.get('distilled'), train=1, infer=1,
        note='share of the ensemble gain kept: ' + ', '.join(_kept(d) for d in draws if 'distilled' in d))
    row('distilled student, EDA on its inputs (T=2, weight 0.5)', lambda d: d.get('distilled, EDA'), train=1, infer=1,
        note='share of the ensemble gain kept: ' + ', '.join(_kept(d, 'distilled, EDA') for d in draws if 'distilled, EDA' in d))
    tr = next((d['distilled, transfer set'] for d in draws if 'distilled, transfer set' in d), None)
    if tr: row(f"distilled student, transfer set of {tr['transfer']} unlabelled texts ({tr['epochs']} epochs, T=2, weight 0.5)",
               lambda d: d.get('distilled, transfer set'), train=None, infer=1,
               note='share of the ensemble gain kept: ' + ', '.join(_kept(d, 'distilled, transfer set') for d in draws if 'distilled, transfer set' in d) + f"; {tr['train_seconds']:.0f}s training")
    if tr: row(f"control: the same student taught by member 0 alone (same transfer set)",
               lambda d: d.get('distilled from member 0, transfer set'), train=None, infer=1,
               note='share of the ensemble gain: ' + ', '.join(_kept(d, 'distilled from member 0, transfer set') for d in draws if 'distilled from member 0, transfer set' in d))
    return rows

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--corpus', default='bbc_news'); ap.add_argument('--n', type=int, default=8)
    ap.add_argument('--draws', type=int, nargs='+', default=[0]); ap.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2, 3, 4])
    ap.add_argument('--cache', default=str(CACHE)); ap.add_argument('--threads', type=int, default=0)
    ap.add_argument('--out', default=str(OUT))
    ap.add_argument('--transfer', type=int, default=1000, help='unlabelled texts in the distillation transfer set')
    ap.add_argument('--transfer-epochs', type=int, default=3, help="the transfer-set student's epochs (it sees many more texts than a member)")
    ap.add_argument('--steps', nargs='+', default=list(STEPS), choices=STEPS, help='what to run (each is cached: run steps in parallel processes, then all of them to collect)')
    ap.add_argument('--collect', action='store_true', help='only tabulate the steps earlier runs computed (e.g. a draw run with fewer --steps)')
    a = ap.parse_args()
    if a.threads: torch.set_num_threads(a.threads)
    global COLLECT; COLLECT = a.collect
    draws, secs = [], []
    for d in a.draws:
        r, s = one_draw(a.corpus, a.n, d, a.seeds, a.cache, a.steps, a.transfer, a.transfer_epochs)
        draws.append(r); secs += s
    test_size = len(splits(a.corpus, a.n, a.draws[0])[2])
    out = Path(a.out)
    res = json.loads(out.read_text()) if out.exists() else {'corpora': {}}
    res['corpora'][a.corpus] = dict(n_per_class=a.n, draws=a.draws, seeds=a.seeds, test_size=test_size, valid_size=len(splits(a.corpus, a.n, a.draws[0])[1]),
                                    member_train_seconds=round(float(np.mean(secs)), 1), table=table(draws, len(a.seeds)), runs=draws,
                                    command='python benchmarks/ensemble_quality.py ' + ' '.join(x for x in sys.argv[1:] if x != '--collect'),
                                    **({'collected': 'tabulated with --collect from the cached steps of earlier runs of this command'} if a.collect else {}))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2))
    for r in res['corpora'][a.corpus]['table']: print(f"{r['model']:55s} acc {r['accuracy']:>12s}  ECE {r['ece']:>12s}  {r['note']}")
    print(f'wrote {out}')

if __name__ == '__main__': main()
