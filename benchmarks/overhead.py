"""What fastai and our data pipeline cost: fastai's per-step overhead over a raw PyTorch loop, and what dynamic padding saves.

    python benchmarks/overhead.py                 # 7-10 minutes on the 2 shared cores at load 15-30, 1 torch thread
    python benchmarks/overhead.py --reps 3 --pad-reps 2 --threads 2

On the default backbone (MiniLM-L6) and tweets (`load_corpus('tweet_sentiment')`), all in one run:

- (a) a raw PyTorch loop: `FMClassifier`, `torch.optim.AdamW` with the hyper-parameters of the fastai `Adam`
  that `fm_learner` uses (lr 3e-4, betas (0.9, 0.99), eps 1e-5, decoupled weight decay 0.01, none on biases and
  norm layers), cross-entropy, forward + backward + step + zero_grad, over batches built in advance;
- (b) `fm_learner(dls).fit(1)` as a user runs it (default callbacks: progress bar, Recorder, metric) over the
  SAME batches (the training loader's random generator is reset before every epoch);
- (a), the headline, is the raw loop with torch's fused AdamW kernel, the same maths and kernel as `fm_learner`'s
  default optimizer `FusedAdam` (fastai's `Adam` computed by the fused kernel, `zero_grad` freeing the gradients);
- breakdown: the raw loop with torch's default AdamW kernel and with fastai's `Adam`, and `fm_learner(opt_func=Adam)`
  (fastai's own optimizer, stepped parameter by parameter); the optimizer step and `zero_grad` alone; and (d) fastai's per-step bookkeeping (callbacks,
  `TextDL.create_batch`, `to_device`), event by event, on the tiny backbone where the model does not hide it;
- (c) one training epoch over the same tweets with every batch padded to `max_len` (random order), padded to its
  longest text (random order), and padded to its longest text with length-sorted batches (what `fm_dls` does);
  the padding share is also computed, without a model, over the whole training split.

Repetitions are interleaved (AB, BA, AB...: the machine is shared and noisy) and summarised by medians, the paired
ratios by their median and interquartile range. Writes benchmarks/results/overhead.json.
"""
import argparse, json, os, platform, random, sys, time, warnings
from pathlib import Path
import numpy as np, torch
import torch.nn.functional as F

def _quiet():
    warnings.filterwarnings('ignore')
    import transformers; transformers.logging.set_verbosity_error()
    try: transformers.utils.logging.disable_progress_bar()
    except AttributeError: pass

def stats(xs) -> dict:
    "Median and spread of a list of timings"
    xs = np.asarray(xs, dtype=float)
    q1, med, q3 = np.percentile(xs, [25, 50, 75])
    return dict(median=round(float(med), 4), q1=round(float(q1), 4), q3=round(float(q3), 4),
                min=round(float(xs.min()), 4), max=round(float(xs.max()), 4), n=len(xs))

def raw_opt(model, lr, wd=0.01, fused=None):
    "torch AdamW with fastai Adam's hyper-parameters; like `Learner(wd_bn_bias=False)`, no weight decay on biases and norm layers"
    from fastai.torch_core import norm_bias_params  # the exact set of parameters fastai exempts
    nowd = {id(p) for p in norm_bias_params(model)}
    groups = [dict(params=[p for p in model.parameters() if id(p) not in nowd], weight_decay=wd),
              dict(params=[p for p in model.parameters() if id(p) in nowd], weight_decay=0.)]
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.99), eps=1e-5, fused=fused)  # fused=None: torch's default kernel

class Clock:
    "Wall-clock and process CPU seconds of a `with` block; CPU time leaves out the time spent waiting for a busy core"
    def __enter__(self): self.w, self.c = time.perf_counter(), time.process_time(); return self
    def __exit__(self, *exc): self.t = (time.perf_counter() - self.w, time.process_time() - self.c)

def raw_epoch(model, opt, batches) -> tuple:
    "(wall, cpu) seconds of one epoch of a raw PyTorch training loop over `batches` (any iterable of (ids, mask, y))"
    model.train()
    with Clock() as c:
        for x, mask, y in batches:
            loss = F.cross_entropy(model(x, mask), y)
            loss.backward()
            opt.step()
            opt.zero_grad()
    return c.t

def interleaved(fns:dict, reps:int) -> dict:
    "Run every function of `fns` (each returns (wall, cpu) seconds) once per repetition, the order reversed every other one"
    times = {'cpu': {k: [] for k in fns}, 'wall': {k: [] for k in fns}}
    names = list(fns)
    for r in range(reps):
        for k in (names if r % 2 == 0 else names[::-1]):
            wall, cpu = fns[k]()
            times['wall'][k].append(wall); times['cpu'][k].append(cpu)
        print(f'  rep {r+1}/{reps} (wall/cpu s): ' + '  '.join(f"{k} {times['wall'][k][-1]:.2f}/{times['cpu'][k][-1]:.2f}" for k in names), flush=True)
    return times

def paired_ratio(num, den) -> dict: return stats(np.asarray(num)/np.asarray(den))

def padding_share(lens, batches_idx, fixed_len=None) -> float:
    "Share of pad tokens in batches (lists of indices into `lens`), padded to their longest or to `fixed_len`"
    real = sum(int(lens[b].sum()) for b in batches_idx)
    total = sum(len(b)*(fixed_len or int(lens[b].max())) for b in batches_idx)
    return 1 - real/total

def bookkeeping_ms(train, a) -> dict:
    "Milliseconds per training step spent in each fastai callback and Learner helper during `fit`, on the tiny backbone"
    import contextlib, io
    from collections import defaultdict
    import fastai.learner as FL, fastai.optimizer as FO
    from fastai.callback.core import Callback
    from fmcombo.data import fm_dls, sample_per_class, TextDL
    from fmcombo.learner import fm_learner
    from fmcombo.testing import tiny_backbone
    dls = fm_dls(sample_per_class(train, 160, seed=a.seed), bs=a.bs, backbone=tiny_backbone(), seed=a.seed)
    learn = fm_learner(dls)
    T = defaultdict(float)
    def timed(key, f):
        def g(*args, **kw):
            t0 = time.perf_counter(); r = f(*args, **kw); T[key(args)] += time.perf_counter() - t0; return r
        return g
    patches = [(Callback, '__call__', lambda args: f'callback {type(args[0]).__name__}'),
               (TextDL, 'create_batch', lambda args: 'TextDL.create_batch (padding, labels)'),
               (FO.Optimizer, 'zero_grad', lambda args: 'fastai Optimizer.zero_grad'),
               (FO.Optimizer, 'step', lambda args: 'fastai Adam step'),
               (FL.Learner, '_set_device', lambda args: 'Learner._set_device (to_device)'),
               (FL.Learner, '_split', lambda args: 'Learner._split'),
               (FL.Learner, '_backward', lambda args: 'backward'),
               (FL.Learner, 'one_batch', lambda args: 'Learner.one_batch (whole step)')]
    saved = [(c, n, c.__dict__[n]) for c, n, _ in patches]
    try:
        for c, n, key in patches: setattr(c, n, timed(key, c.__dict__[n]))
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            learn.fit(1); T.clear()  # warm-up
            t0 = time.perf_counter(); learn.fit(2); total = time.perf_counter() - t0
    finally:
        for c, n, f in saved: setattr(c, n, f)
    steps = 2*len(dls.train)
    res = {k: round(v/steps*1000, 3) for k, v in sorted(T.items(), key=lambda kv: -kv[1])}
    res['fit, all included'] = round(total/steps*1000, 3)
    res['all callbacks'] = round(sum(v for k, v in T.items() if k.startswith('callback'))/steps*1000, 3)
    return res

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--n', type=int, default=32, help='tweets per class for (a)/(b): 3 classes, bs 16 -> 6 steps an epoch')
    ap.add_argument('--pad-n', type=int, default=24, help='tweets per class for the padding comparison (c): 72 tweets, 5 steps')
    ap.add_argument('--bs', type=int, default=16)
    ap.add_argument('--max-len', type=int, default=128, help='fm_dls default')
    ap.add_argument('--reps', type=int, default=4, help='interleaved repetitions of (a)/(b) epochs (even: each order as often)')
    ap.add_argument('--pad-reps', type=int, default=3, help='interleaved repetitions of (c) epochs')
    ap.add_argument('--threads', type=int, default=1,
                    help='torch threads; 1 by default: on shared, oversubscribed cores 2 threads made steps up to 5x slower and far noisier')
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--out', default=str(Path(__file__).parent/'results'/'overhead.json'))
    a = ap.parse_args()
    _quiet()
    torch.set_num_threads(a.threads)
    t_start, load_start = time.perf_counter(), os.getloadavg()
    import fastai, transformers
    from fastai.optimizer import Adam
    from fastai.torch_core import norm_bias_params
    from fmcombo.data import load_corpus, sample_per_class, fm_dls, TextDL
    from fmcombo.learner import fm_learner, fm_splitter, DEFAULT_LR

    ds = load_corpus('tweet_sentiment')
    train = ds['train']

    # ---- (a) vs (b): the same batches, the same model, a fastai-equivalent optimizer ------------------------------
    dls = fm_dls(sample_per_class(train, a.n, seed=a.seed), bs=a.bs, max_len=a.max_len, seed=a.seed)  # no validation set
    learn = fm_learner(dls)
    model, tdl = learn.model, dls.train
    def reset_order(): tdl.rng = random.Random(a.seed)  # the same shuffled, length-sorted batches every epoch
    reset_order(); batches = list(tdl)
    reset_order(); again = list(tdl)
    assert all(torch.equal(u, v) for b1, b2 in zip(batches, again) for u, v in zip(b1, b2)), 'batches differ between epochs'
    n_steps = len(batches)
    opt_torch = raw_opt(model, DEFAULT_LR)
    opt_fused = raw_opt(model, DEFAULT_LR, fused=True)
    opt_fastai = Adam(fm_splitter(model), lr=DEFAULT_LR)  # what Learner.create_opt builds, with its no-wd flags
    for p in norm_bias_params(model): opt_fastai.state[p]['do_wd'] = False
    learn_fused = fm_learner(dls, opt_func=Adam)   # fastai's own Adam, stepped parameter by parameter
    learn_fused.model = model  # the same weights for every variant

    def fit(l):
        def f():
            reset_order()
            with Clock() as c: l.fit(1)
            return c.t
        return f
    variants = {'a_raw': lambda: raw_epoch(model, opt_torch, batches),
                'b_fastai_fit': fit(learn),  # fm_learner's default optimizer: FusedAdam
                'a_raw_fastai_Adam': lambda: raw_epoch(model, opt_fastai, batches),
                'a_raw_fused_AdamW': lambda: raw_epoch(model, opt_fused, batches),
                'b_fastai_fit_fastai_Adam': fit(learn_fused)}
    print(f'(a)/(b): {n_steps} steps an epoch, shapes {[tuple(b[0].shape) for b in batches]}; warm-up', flush=True)
    for l in (learn, learn_fused): l.create_opt()  # `fit` keeps an existing optimizer
    for opt in (opt_torch, learn.opt, opt_fastai, opt_fused, learn_fused.opt): raw_epoch(model, opt, batches[:1])  # optimizer states, allocator
    t = interleaved(variants, a.reps)
    per_step, ratios = {}, {}
    for clk, tc in t.items():
        per_step[clk] = {k: stats(np.asarray(v)/n_steps) for k, v in tc.items()}
        r = ratios[clk] = {f'{k}/a_raw': paired_ratio(tc[k], tc['a_raw']) for k in variants if k != 'a_raw'}
        r['b_fastai_fit_fastai_Adam/a_raw_fastai_Adam'] = paired_ratio(tc['b_fastai_fit_fastai_Adam'], tc['a_raw_fastai_Adam'])
        r['b_fastai_fit/a_raw_fused_AdamW'] = paired_ratio(tc['b_fastai_fit'], tc['a_raw_fused_AdamW'])
        r['b_fastai_fit_fastai_Adam/b_fastai_fit'] = paired_ratio(tc['b_fastai_fit_fastai_Adam'], tc['b_fastai_fit'])

    # the optimizer step alone, interleaved, on the gradients of one batch
    x, mask, y = batches[0]
    F.cross_entropy(model(x, mask), y).backward()
    def timed_step(opt):
        with Clock() as c: opt.step()
        return c.t
    grads = [p.grad.clone() for p in model.parameters()]
    weights = [p.detach().clone() for p in model.parameters()]
    def restore():
        with torch.no_grad():
            for p, w, g in zip(model.parameters(), weights, grads): p.copy_(w); p.grad = g.clone()
    def zero(opt):
        def f():
            restore()
            with Clock() as c: opt.zero_grad()
            return c.t
        return f
    print('optimizer step and zero_grad alone', flush=True)
    t_opt = interleaved({'torch_AdamW_step': lambda: (restore(), timed_step(opt_torch))[1],
                         'fastai_Adam_step': lambda: (restore(), timed_step(opt_fastai))[1],
                         'torch_fused_AdamW_step': lambda: (restore(), timed_step(opt_fused))[1],
                         'fastai_zero_grad (zero_)': zero(opt_fastai), 'torch_zero_grad (set_to_none)': zero(opt_torch)}, 8)
    model.zero_grad(set_to_none=True)

    # ---- (c) padding: per-batch to the longest + length-sorted (fm_dls) vs random order vs to max_len ------------
    class MaxLenDL(TextDL):
        "Every batch padded to `max_len` (the naive way)"
        def create_batch(self, idxs):
            x, m, *y = super().create_batch(idxs)
            L = self.dataset.max_len
            return (F.pad(x, (0, L - x.shape[1]), value=self.pad_id), F.pad(m, (0, L - m.shape[1]), value=0), *y)
    pdls = fm_dls(sample_per_class(train, a.pad_n, seed=a.seed+1), bs=a.bs, max_len=a.max_len, seed=a.seed)
    pds, pad_id = pdls.train.dataset, pdls.train.pad_id
    loaders = {'max_len_padding': MaxLenDL(pds, bs=a.bs, shuffle=True, sortish=False, pad_id=pad_id, seed=a.seed),
               'dynamic_padding_random_order': TextDL(pds, bs=a.bs, shuffle=True, sortish=False, pad_id=pad_id, seed=a.seed),
               'dynamic_padding_sorted (fm_dls)': pdls.train}
    def pad_epoch(dl):
        def f(): dl.rng = random.Random(a.seed); return raw_epoch(model, opt_torch, dl)
        return f
    def shares(dl, fixed=None):
        dl.rng = random.Random(a.seed); idxs = dl.get_idxs()
        return padding_share(dl.dataset.lens, [np.array(idxs[i:i+a.bs]) for i in range(0, len(idxs), a.bs)], fixed)
    pad_share = {k: round(shares(dl, a.max_len if k == 'max_len_padding' else None), 4) for k, dl in loaders.items()}
    # the same three schemes over the whole training split (length only, no model)
    full = fm_dls(train, bs=a.bs, max_len=a.max_len, seed=a.seed).train
    full_share = {'max_len_padding': round(shares(TextDL(full.dataset, bs=a.bs, shuffle=True, pad_id=pad_id, seed=a.seed), a.max_len), 4),
                  'dynamic_padding_random_order': round(shares(TextDL(full.dataset, bs=a.bs, shuffle=True, pad_id=pad_id, seed=a.seed)), 4),
                  'dynamic_padding_sorted (fm_dls)': round(shares(full), 4)}
    print(f'(c): {len(pds)} tweets, {len(pdls.train)} steps an epoch; padding share {pad_share}; whole split {full_share}', flush=True)
    for dl in loaders.values(): raw_epoch(model, opt_torch, [dl.one_batch()])  # warm-up: one step each
    t_pad = interleaved({k: pad_epoch(dl) for k, dl in loaders.items()}, a.pad_reps)
    fm = 'dynamic_padding_sorted (fm_dls)'
    pad_speedup = {clk: {f'{k}/{fm}': paired_ratio(tc[k], tc[fm]) for k in loaders if k != fm} for clk, tc in t_pad.items()}

    # ---- (d) fastai's per-step bookkeeping, event by event, on the tiny backbone (where the model does not hide it) --
    print('(d) per-step bookkeeping on the tiny backbone', flush=True)
    costs = bookkeeping_ms(train, a)

    # ---- report ---------------------------------------------------------------------------------------------------
    # headline: CPU time (see --help and the note in the JSON); (a) is the raw loop with the same optimizer maths and kernel
    overhead = ratios['cpu']['b_fastai_fit/a_raw_fused_AdamW']['median']
    speedup = pad_speedup['cpu'][f'max_len_padding/{fm}']['median']
    res = dict(
        command='python benchmarks/overhead.py ' + ' '.join(sys.argv[1:]),
        goals={'(b)/(a) <= 1.05': overhead <= 1.05, 'padding speedup >= 1.5': speedup >= 1.5},
        fastai_overhead_ratio=overhead, padding_speedup=speedup,
        machine=dict(torch_threads=torch.get_num_threads(), cpu_count=os.cpu_count(),
                     cpus_usable=len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else None,
                     torch=torch.__version__, fastai=fastai.__version__, transformers=transformers.__version__,
                     python=platform.python_version(), platform=platform.platform(),
                     loadavg_start=[round(x, 2) for x in load_start], loadavg_end=[round(x, 2) for x in os.getloadavg()],
                     note='shared machine: other processes (trainings, tests, other benchmarks) ran on these cores during the '
                          'benchmark (see loadavg); hence interleaved repetitions, medians and paired ratios, and the headline '
                          'ratios in process CPU time (time.process_time), which leaves out the time spent waiting for a core; '
                          'wall-clock figures are given too'),
        setup=dict(backbone='default (all-MiniLM-L6-v2)', corpus='tweet_sentiment', bs=a.bs, max_len=a.max_len, seed=a.seed,
                   overhead_texts=len(dls.train.dataset), steps_per_epoch=n_steps, batch_shapes=[list(b[0].shape) for b in batches],
                   padding_texts=len(pds), padding_steps_per_epoch=len(pdls.train), reps=a.reps, pad_reps=a.pad_reps,
                   order='interleaved; order of the variants reversed every other repetition'),
        seconds_per_step=per_step, ratios=ratios,
        optimizer_step_seconds={clk: {k: stats(v) for k, v in tc.items()} for clk, tc in t_opt.items()},
        optimizer_step_ratio={clk: paired_ratio(tc['fastai_Adam_step'], tc['torch_AdamW_step']) for clk, tc in t_opt.items()},
        bookkeeping_ms_per_step_tiny_backbone=costs,
        padding=dict(seconds_per_epoch={clk: {k: stats(v) for k, v in tc.items()} for clk, tc in t_pad.items()}, speedup=pad_speedup,
                     padding_share_timed_texts=pad_share, padding_share_whole_train_split=full_share),
        raw_seconds=dict(overhead=t, optimizer_step=t_opt, padding=t_pad),
        wall_seconds=round(time.perf_counter() - t_start, 1))
    out = Path(a.out); out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2))

    def fmt(s): return f"{s['median']:.3f} (IQR {s['q1']:.3f}-{s['q3']:.3f})"
    for clk in ('cpu', 'wall'):
        print(f'\n== {clk} time ==')
        print(f'seconds per training step, median (IQR) over {a.reps} interleaved epochs of {n_steps} steps:')
        for k, s in per_step[clk].items(): print(f'  {k:28s} {fmt(s)}')
        print('paired ratios:')
        for k, s in ratios[clk].items(): print(f'  {k:42s} {fmt(s)}')
        print('optimizer step and zero_grad alone, seconds:')
        for k, v in res['optimizer_step_seconds'][clk].items(): print(f'  {k:34s} {fmt(v)}')
        print(f"  fastai Adam step / torch AdamW step: {fmt(res['optimizer_step_ratio'][clk])}")
        print(f'seconds per epoch of {len(pds)} tweets over {a.pad_reps}; padding share (timed texts / whole split):')
        for k, s in res['padding']['seconds_per_epoch'][clk].items(): print(f'  {k:34s} {fmt(s)}   {pad_share[k]:.1%} / {full_share[k]:.1%}')
        for k, s in pad_speedup[clk].items(): print(f'  speedup {k:60s} {fmt(s)}')
    print('\nfastai bookkeeping during fit on the tiny backbone, ms per step (wall):')
    for k, v in costs.items(): print(f'  {k:40s} {v:8.3f}')
    w = lambda r: ratios['wall'][r]['median']
    print(f"\n(b)/(a) = {overhead:.3f} in CPU time, {w('b_fastai_fit/a_raw_fused_AdamW'):.3f} in wall time (goal <= 1.05: {'met' if overhead <= 1.05 else 'NOT met'}); "
          f"padding speedup = {speedup:.2f}x in CPU time, {pad_speedup['wall'][f'max_len_padding/{fm}']['median']:.2f}x in wall time "
          f"(goal >= 1.5: {'met' if speedup >= 1.5 else 'NOT met'})")
    print(f"fm_learner(opt_func=fastai's Adam) takes {ratios['cpu']['b_fastai_fit_fastai_Adam/b_fastai_fit']['median']:.2f}x the time of the default FusedAdam; "
          f"(b) / raw loop with torch's default AdamW kernel: {ratios['cpu']['b_fastai_fit/a_raw']['median']:.3f} (CPU time)")
    print(f"wrote {out} ({res['wall_seconds']:.0f} s)")

if __name__ == '__main__': main()
