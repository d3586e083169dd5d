"""What fmcombo costs against doing it by hand: a training step against a raw PyTorch loop and the transformers Trainer, and prediction against a pipeline.

    python benchmarks/cost.py                 # the default backbone, 1 torch thread
    python benchmarks/cost.py --quick         # the tiny backbone, seconds (`make bench QUICK=1`)
    python benchmarks/cost.py --collect       # rewrite cost.md from cost.json and the other cost benchmarks

One interleaved run. The three trainers train the same model (an `FMClassifier` of the backbone, the
same initial weights) on the same padded batches of tweets (bs 16, lengths as the data give them):
- fmcombo: `learn.fit` of plain fine-tuning (fastai's loop, `FusedAdam`, `CrossEntropyLossFlat`);
- raw: `loss = cross_entropy(model(x, mask), y); loss.backward(); opt.step(); opt.zero_grad()` with torch's AdamW;
- Trainer: the transformers `Trainer` (its default AdamW) fed the very same batches.
They take turns in rounds (`--rounds`, `--steps` steps each), so that a slow spell of a shared machine
hits all of them; the figure is the median seconds of a step after the first round (warm-up).
Peak memory is measured per trainer in a fresh process, since one process's peak covers all that ran in it:
the resident memory sampled every 2 ms while it trains (and its growth over the memory before), and
`max_memory_allocated` on a GPU.
Prediction: `learn.predict_texts` against `pipeline("text-classification")` on the backbone with a
sequence-classification head, the same texts, batch size and truncation, also in turns; texts per second.
Writes cost.json and cost.md into --out. cost.md also shows the per-step cost of every technique, read
from the cost benchmarks of each family beside cost.json (adversarial_cost.json, augment_cost.json,
ensemble_cost.json), each under the conditions it states.
"""
import argparse, copy, json, os, subprocess, sys, tempfile, threading, time, warnings
from pathlib import Path

import numpy as np, torch
from torch import nn
import torch.nn.functional as F
from fastai.callback.core import Callback, CancelFitException

from fmcombo.backbone import default_backbone_path, quiet_hf
from fmcombo.data import load_corpus, sample_per_class, fm_dls
from fmcombo.learner import fm_learner, learner_from_model

ARMS = ('fmcombo', 'raw', 'trainer')

def setup(backbone, n_batches, seed=0):
    "(dls, a learner whose initial weights every arm copies, the list of batches)"
    ds = load_corpus('tweet_sentiment')
    dls = fm_dls(sample_per_class(ds['train'], 64, seed=seed), backbone=backbone, bs=16, seed=seed)
    with quiet_hf(): learn = fm_learner(dls, seed=seed)
    if n_batches >= len(dls.train): raise SystemExit(f"--steps must be below {len(dls.train)}, the batches of the sample")
    batches = [b for _, b in zip(range(n_batches), dls.train)]
    return ds, dls, learn, batches

class StepClock(Callback):
    "Seconds between successive `before_batch` events (one whole step of fastai's loop, loader and callbacks included)"
    def before_fit(self): self.t, self.times = None, []
    def before_batch(self):
        now = time.perf_counter()
        if self.t is not None: self.times.append(now - self.t)
        self.t = now

class FixedBatches(Callback):
    "Train on `batches` in order instead of the loader's own (which are still built, as in a real fit); stop after the last"
    order = StepClock.order + 1
    def __init__(self, batches): self.batches = batches
    def before_batch(self):
        if self.iter == len(self.batches): raise CancelFitException()
        self.learn.xb, self.learn.yb = tuple(self.batches[self.iter][:2]), tuple(self.batches[self.iter][2:])

def fastai_steps(dls, model, batches, lr):
    "fmcombo's plain fine-tuning over `batches`: the learner's own loop"
    learn = learner_from_model(dls, model)
    clock = StepClock()
    with learn.no_bar(), learn.no_logging(): learn.fit(1, lr, cbs=[clock, FixedBatches(batches)])
    return clock.times[1:]   # the first step of a fit also builds the optimizer

def raw_steps(model, batches, lr):
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    times = []
    for x, m, y in batches:
        t = time.perf_counter()
        loss = F.cross_entropy(model(x, m), y); loss.backward(); opt.step(); opt.zero_grad()
        times.append(time.perf_counter() - t)
    return times[1:]   # as for fastai: the first step builds the optimizer state

class _HFWrap(nn.Module):
    "The same model behind the interface the Trainer expects (loss from labels)"
    def __init__(self, model): super().__init__(); self.model = model
    def forward(self, input_ids, attention_mask, labels=None):
        logits = self.model(input_ids, attention_mask)
        return dict(loss=F.cross_entropy(logits, labels), logits=logits)

def trainer_steps(model, batches, lr):
    from transformers import Trainer, TrainingArguments, TrainerCallback, PrinterCallback
    times = []
    class Clock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw): self.t = time.perf_counter()
        def on_step_end(self, args, state, control, **kw): times.append(time.perf_counter() - self.t)
    class Fixed(Trainer):   # the very same batches, in order
        def get_train_dataloader(self): return [dict(input_ids=x, attention_mask=m, labels=y) for x, m, y in batches]
    with tempfile.TemporaryDirectory() as out, quiet_hf(), warnings.catch_warnings():
        warnings.simplefilter('ignore')
        args = TrainingArguments(output_dir=out, learning_rate=lr, max_steps=len(batches), per_device_train_batch_size=16, report_to=[],
                                 save_strategy='no', logging_strategy='no', disable_tqdm=True, use_cpu=not torch.cuda.is_available(),
                                 lr_scheduler_type='constant', warmup_steps=0)
        tr = Fixed(model=_HFWrap(model), args=args, callbacks=[Clock()])
        tr.remove_callback(PrinterCallback)
        tr.train()
    return times[1:]   # as for the others: the first step builds the optimizer state

def run_arm(arm, dls, learn, batches, lr=1e-4):
    model = copy.deepcopy(learn.model)   # the same initial weights for every arm
    if arm == 'fmcombo': return fastai_steps(dls, model, batches, lr)
    if arm == 'raw': return raw_steps(model, batches, lr)
    return trainer_steps(model, batches, lr)

def rss_mib() -> float:
    "The process's resident memory now, MiB"
    return int(Path('/proc/self/statm').read_text().split()[1])*os.sysconf('SC_PAGE_SIZE')/2**20

def memory_child(a):
    "In a fresh process: the peak memory of `a.memory_arm` training `a.steps` steps, sampled every 2 ms"
    torch.set_num_threads(a.threads)
    ds, dls, learn, batches = setup(a.backbone, a.steps)
    before, peak, stop = rss_mib(), [0.], threading.Event()
    def sample():
        while not stop.is_set(): peak[0] = max(peak[0], rss_mib()); time.sleep(0.002)
    th = threading.Thread(target=sample, daemon=True); th.start()
    if torch.cuda.is_available(): torch.cuda.reset_peak_memory_stats()
    run_arm(a.memory_arm, dls, learn, batches)
    stop.set(); th.join()
    gpu = torch.cuda.max_memory_allocated()/2**20 if torch.cuda.is_available() else None
    print(json.dumps(dict(peak_rss_mib=round(peak[0], 1), rss_growth_mib=round(peak[0] - before, 1), gpu_peak_mib=gpu and round(gpu, 1))))

def predict_rounds(ds, learn, backbone, n_texts, rounds, bs=64):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline
    texts = list(ds['test']['text'][:n_texts])
    with quiet_hf(), warnings.catch_warnings():
        warnings.simplefilter('ignore')
        hf = AutoModelForSequenceClassification.from_pretrained(backbone, num_labels=learn.dls.c)
        pipe = pipeline('text-classification', model=hf, tokenizer=AutoTokenizer.from_pretrained(backbone),
                        device=0 if torch.cuda.is_available() else -1)
    out = {'predict_texts': [], 'pipeline': []}
    for r in range(rounds + 1):
        for arm in (('predict_texts', 'pipeline') if r % 2 == 0 else ('pipeline', 'predict_texts')):
            t = time.perf_counter()
            if arm == 'predict_texts': learn.predict_texts(texts, bs=bs)
            else: pipe(texts, batch_size=bs, truncation=True, max_length=learn.dls.max_len, top_k=None)
            if r: out[arm].append(len(texts)/(time.perf_counter() - t))   # round 0 warms up
    return out

def callback_rows(results:Path) -> list:
    "Markdown lines: the per-step cost of every callback, as the cost benchmarks beside cost.json measured it (each with its own conditions)"
    md = []
    adv, aug, ens = (results/f'{n}.json' for n in ('adversarial_cost', 'augment_cost', 'ensemble_cost'))
    if adv.exists():
        a = json.loads(adv.read_text())
        md += ['', f"Adversarial training, a training step against plain's (wall time, {a['torch_threads']} torch threads, batch {a['batch']}; `{a['command']}`):", '',
               '| callback | s/step | × plain |', '|---|---|---|'] + [f"| {r['arm']} | {r['seconds_per_step']} | {r['ratio']} |" for r in a['table']]
    if aug.exists():
        a = json.loads(aug.read_text())
        md += ['', f"Augmentation in embedding and hidden space, a training step against plain's (CPU time, {a['torch_threads']} torch thread, "
               f"{a['corpus']} batches of {a['bs']}; `{a['command']}`):", '', '| callback | CPU s/step | × plain |', '|---|---|---|']
        md += [f"| {r['method']} | {r['CPU s/step (median)']} | {r['ratio to plain (CPU)']} |" for r in a['steps']]
        md += ['', 'Text transforms, time per batch as a share of a plain step (CPU):', '', '| transform | share of a step |', '|---|---|']
        md += [f"| {r['transform']} | {100*r['share of plain step (CPU)']:.1f} % |" for r in a['text_tfms']]
    if ens.exists():
        a = json.loads(ens.read_text())
        md += ['', f"Ensembles, a whole training run against one member's (wall time, {a['torch_threads']} torch threads; `{a['command']}`):", '',
               '| method | × one member |', '|---|---|'] + [f"| {r['method']} | {r['vs one member']} |" for r in a['training']]
    return md

def write_md(res:dict, out:Path, results:Path|None=None):
    "cost.md from cost.json's figures, with the per-callback rows of the cost benchmarks in `results` (default: `out`)"
    med, mem, tput = res['step_seconds_median'], res['memory'], res['predict_texts_per_second']
    md = [f"# Cost: fmcombo against a raw loop, the Trainer and a pipeline", '', f"`{res['command']}`; {res['device']}, {res['threads']} torch thread(s); "
          f"{res['rounds']} rounds of {res['steps_per_round']} steps each (the first a warm-up); {res['wall_seconds']:.0f} s.", '',
          '| | fmcombo | raw PyTorch loop | transformers Trainer |', '|---|---|---|---|',
          f"| training step, median s | {med['fmcombo']:.4f} | {med['raw']:.4f} | {med['trainer']:.4f} |",
          f"| ratio fmcombo / other | 1 | {res['step_ratio']['fmcombo/raw']} | {res['step_ratio']['fmcombo/trainer']} |",
          f"| peak RSS, MiB (growth while training) | " + ' | '.join(f"{mem[k].get('peak_rss_mib')} ({mem[k].get('rss_growth_mib')})" for k in ARMS) + ' |', '',
          '| | predict_texts | pipeline("text-classification") |', '|---|---|---|',
          f"| texts per second, median | {tput['predict_texts']:.1f} | {tput['pipeline']:.1f} |", '',
          'Goals: ' + '; '.join(f"{k}: {'met' if v else 'not met'}" for k, v in res['goals'].items()) + '.']
    rows = callback_rows(Path(results or out))
    if rows: md += ['', '## The cost of each technique', '', 'Read from the cost benchmarks of each family; compare ratios within one table, since each was measured under its own conditions.'] + rows
    (Path(out)/'cost.md').write_text('\n'.join(md) + '\n')
    print('\n'.join(md))

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--backbone', default=None, help='backbone folder; default: the offline default backbone')
    ap.add_argument('--steps', type=int, default=10, help='training steps per arm per round')
    ap.add_argument('--rounds', type=int, default=4, help='rounds of turns (the first is a warm-up)')
    ap.add_argument('--texts', type=int, default=512, help='texts per prediction round')
    ap.add_argument('--threads', type=int, default=1, help='torch threads (the shared machine has 2 cores)')
    ap.add_argument('--out', default='benchmarks/results', help='folder of cost.json and cost.md')
    ap.add_argument('--quick', action='store_true', help='the tiny backbone, fewer steps: seconds')
    ap.add_argument('--collect', action='store_true', help='rewrite cost.md from cost.json and the other cost benchmarks, without measuring')
    ap.add_argument('--memory-arm', choices=ARMS, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.quick:
        from fmcombo.testing import tiny_backbone   # benchmarks may use the test backbone; the library never does
        a.backbone, a.steps, a.rounds, a.texts = a.backbone or tiny_backbone(), min(a.steps, 5), min(a.rounds, 3), min(a.texts, 128)
    a.backbone = a.backbone or default_backbone_path()
    if a.memory_arm: return memory_child(a)
    if a.collect: return write_md(json.loads((Path(a.out)/'cost.json').read_text()), Path(a.out))
    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    ds, dls, learn, batches = setup(a.backbone, a.steps)
    steps = {arm: [] for arm in ARMS}
    for r in range(a.rounds):
        order = ARMS[r % 3:] + ARMS[:r % 3]   # rotate who goes first
        for arm in order:
            ts = run_arm(arm, dls, learn, batches)
            if r: steps[arm] += ts
    med = {arm: float(np.median(v)) for arm, v in steps.items()}
    mem = {}
    for arm in ARMS:
        cmd = [sys.executable, __file__, '--memory-arm', arm, '--backbone', a.backbone, '--steps', str(a.steps), '--threads', str(a.threads)]
        res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, 'OMP_NUM_THREADS': str(a.threads)})
        mem[arm] = json.loads(res.stdout.strip().splitlines()[-1]) if res.returncode == 0 else dict(error=res.stderr[-500:])
    pred = predict_rounds(ds, learn, a.backbone, a.texts, max(2, a.rounds - 1))
    tput = {k: float(np.median(v)) for k, v in pred.items()}
    res = dict(command=('python benchmarks/cost.py ' + ' '.join(sys.argv[1:] if argv is None else argv)).strip(),
               backbone=a.backbone, threads=a.threads, steps_per_round=a.steps, rounds=a.rounds, bs=16,
               device='cuda' if torch.cuda.is_available() else 'cpu',
               step_seconds_median={k: round(v, 5) for k, v in med.items()},
               step_ratio={'fmcombo/raw': round(med['fmcombo']/med['raw'], 3), 'fmcombo/trainer': round(med['fmcombo']/med['trainer'], 3)},
               memory=mem, predict_texts_per_second={k: round(v, 1) for k, v in tput.items()},
               predict_ratio={'predict_texts/pipeline': round(tput['predict_texts']/tput['pipeline'], 3)},
               goals={'step <= 1.05x raw': med['fmcombo'] <= 1.05*med['raw'], 'step <= 1.0x Trainer': med['fmcombo'] <= med['trainer'],
                      'predict_texts >= pipeline': tput['predict_texts'] >= tput['pipeline']},
               wall_seconds=round(time.perf_counter() - t0, 1))
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    (out/'cost.json').write_text(json.dumps(res, indent=1))
    write_md(res, out)
    return res


if __name__ == '__main__': main()
