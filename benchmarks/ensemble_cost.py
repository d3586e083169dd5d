"""What ensembles cost: inference throughput of a 5-member ensemble (vmapped vs member by member) and each method's training cost relative to one member.

    python benchmarks/ensemble_cost.py                 # default backbone, BBC News texts
    python benchmarks/ensemble_cost.py --reps 5 --epochs 2

Inference: five members of the default backbone (weights do not change the cost) classify the
same BBC News test texts, `batched=True` (torch.func.stack_module_state + vmap) and `batched=False`
(a loop over members), interleaved `--reps` times; one member alone for reference.
Training: plain `fit_one_cycle`, `SnapshotEnsemble` (with `fit`), `SWA` and `Distill` (teacher: the
5-member ensemble) on BBC News 8 per class for `--epochs` epochs, interleaved `--reps` times; the
ratio is to the plain run of the same repetition. A k-member ensemble or soup costs k plain runs
(the greedy soup adds k evaluations of the validation set). Writes benchmarks/results/ensemble_cost.json.
"""
import argparse, json, os, sys, time
from pathlib import Path
import numpy as np, torch

from fmcombo.data import load_corpus, sample_per_class, fm_dls
from fmcombo.learner import fm_learner, DEFAULT_LR
from fmcombo.ensemble import Ensemble, SnapshotEnsemble, SWA, Distill

def timed(f):
    t0 = time.perf_counter(); f(); return time.perf_counter() - t0

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--members', type=int, default=5); ap.add_argument('--texts', type=int, default=64)
    ap.add_argument('--bs', type=int, default=64); ap.add_argument('--reps', type=int, default=3)
    ap.add_argument('--epochs', type=int, default=1); ap.add_argument('--threads', type=int, default=0)
    ap.add_argument('--parts', nargs='+', default=['inference', 'training'], choices=['inference', 'training'])
    ap.add_argument('--out', default=str(Path(__file__).parent/'results'/'ensemble_cost.json'))
    a = ap.parse_args()
    if a.threads: torch.set_num_threads(a.threads)
    ds = load_corpus('bbc_news')
    few = sample_per_class(ds['train'], 8, seed=0)
    texts = ds['test']['text'][:a.texts]
    members = [fm_learner(fm_dls(few, bs=16, seed=s)) for s in range(a.members)]
    out = Path(a.out); out.parent.mkdir(parents=True, exist_ok=True)
    res = dict(inference=None, training=None, texts=a.texts, bs=a.bs, epochs=a.epochs, reps=a.reps, parts=a.parts,
               torch_threads=torch.get_num_threads(), device='cpu',
               note=f'{os.cpu_count()} CPU cores, {torch.get_num_threads()} torch threads; arms interleaved in one run, so the ratios hold while the load of the machine changes; absolute seconds depend on it',
               command='python benchmarks/ensemble_cost.py ' + ' '.join(sys.argv[1:]))
    def save(): out.write_text(json.dumps(res, indent=2))
    if 'inference' in a.parts: inference_part(a, members, texts, res, save)
    if 'training' in a.parts: training_part(a, members, few, res, save)
    for r in (res['inference'] or []) + (res['training'] or []): print(r)
    print(f'wrote {out}')

def inference_part(a, members, texts, res, save):
    loop, vm, single = Ensemble(members, batched=False, bs=a.bs), Ensemble(members, batched=True, bs=a.bs), Ensemble(members[:1], bs=a.bs)
    torch.testing.assert_close(vm.member_logits(texts[:8]), loop.member_logits(texts[:8]), atol=1e-4, rtol=1e-4)   # same result (and a warm-up)
    inf = {'member by member (loop)': [], 'batched (stack_module_state + vmap)': [], 'one member alone': []}
    for r in range(a.reps):
        for name, e in zip(inf, (loop, vm, single)):
            inf[name].append(a.texts / timed(lambda: e.member_logits(texts)))
            print(f'rep {r} {name:40s} {inf[name][-1]:.1f} texts/s', flush=True)
        base = np.array(inf['member by member (loop)'])
        res['inference'] = [{'mode': k, 'members': 1 if k.startswith('one') else a.members, 'texts/s': round(float(np.mean(v)), 2),
                  'std': round(float(np.std(v, ddof=1)), 2) if len(v) > 1 else 0., 'vs loop': round(float(np.mean(np.array(v)/base)), 3)} for k, v in inf.items()]
        res['inference_reps_done'] = r + 1; save()

def training_part(a, members, few, res, save):
    teacher = Ensemble(members)
    def run(make_cbs, how):
        learn = fm_learner(fm_dls(few, bs=16, seed=0), cbs=make_cbs())
        with learn.no_bar(), learn.no_logging(): return timed(lambda: getattr(learn, how)(a.epochs, DEFAULT_LR))
    methods = {'one member: fit_one_cycle': (lambda: None, 'fit_one_cycle'),
               'SnapshotEnsemble(5) with fit': (lambda: [SnapshotEnsemble(5)], 'fit'),
               f'SWA(start_epoch=0)': (lambda: [SWA(start_epoch=0)], 'fit_one_cycle'),
               f'Distill({a.members}-member ensemble)': (lambda: [Distill(teacher)], 'fit_one_cycle')}
    secs = {k: [] for k in methods}
    for r in range(a.reps):
        for k, (cbs, how) in methods.items():
            secs[k].append(run(cbs, how)); print(f'rep {r} {k:40s} {secs[k][-1]:.1f}s', flush=True)
        plain = np.array(secs['one member: fit_one_cycle'])
        res['training'] = [{'method': k, 'seconds': round(float(np.mean(v)), 1), 'vs one member': round(float(np.mean(np.array(v)/plain)), 2),
                 'std of ratio': round(float(np.std(np.array(v)/plain, ddof=1)), 2) if len(v) > 1 else 0.} for k, v in secs.items()]
        res['training'] += [{'method': f'{a.members}-member ensemble / uniform soup', 'seconds': None, 'vs one member': float(a.members), 'std of ratio': 0.},
                 {'method': f'greedy soup', 'seconds': None, 'vs one member': float(a.members), 'std of ratio': 0.}]
        res['training_reps_done'] = r + 1; save()

if __name__ == '__main__': main()
