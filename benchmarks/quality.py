"""Few-shot quality against the peers: fmcombo's recipes and transfer techniques, SetFit and the transformers Trainer, on the same samples and seeds.

    python benchmarks/quality.py                                   # the full benchmark (hours): both corpora, seeds 0-4, every row
    python benchmarks/quality.py --corpora tweet_sentiment --rows plain supcon setfit --seeds 0 1 2
    python benchmarks/quality.py --quick                           # 2 seeds x 3 rows on the tiny backbone, in minutes (`make bench QUICK=1`)
    python benchmarks/quality.py --collect --attack-n 0            # the tables from the runs file alone (after several processes shared it)

Settings: BBC News with 8 texts per class and tweets with 32 per class. Seed s draws the training
sample (`sample_per_class(train, n, seed=s)`), shuffles the batches and initialises the head, for
every row alike (paired). Every model is scored on the same fixed stratified 2,000-text subset of
the test split (as benchmarks/adversarial_accuracy.py picks it; BBC's 445-text test split is used
whole) and attacked with the character attack on 200 of those texts.

Rows: fmcombo's built-in recipes (`plain`, `combined` and every single technique at its default,
trained by `Recipe.train`), the transfer techniques of `fmcombo.transfer` at their defaults
(trained like `plain`: `fit_one_cycle(DEFAULT_EPOCHS, DEFAULT_LR)` with the callback added; `supcon-w0.5`
and `supcon-w0.9` give the contrastive term a weight of 0.5 and 0.9 instead of its default 0.1), `norm` (`plain`
with `pooling="norm"`: the head on the normalised mean embedding, with a learned scale), `epochs30`
(`plain` for 30 epochs instead of 10), `combined-nofgm` (`combined` with a plain student: no FGM, which
`combined` keeps on its student for robustness), `combined-student5` (its student trained for 5
epochs instead of 3), `soup-own` (`soup` with each member's head initialised from the member's own seed instead of the run's), and
the peers: SetFit 1.2 (`setfit`, the same backbone folder as body, its default training
arguments, a metric callable so that nothing is downloaded) and the transformers `Trainer`
(`AutoModelForSequenceClassification`, its default arguments; `trainer-neftune` adds its own
`neftune_noise_alpha=5`). The peers are benchmark dependencies only: `pip install -e ".[bench]"`.
fmcombo's rows and the Trainer read the first 128 tokens of each text (`fm_dls`' default); a row
name ending in `@L` (`plain@256`, `combined@256`) reads the first L instead. SetFit reads as many
as its body's sentence-transformers folder says (256 for the default backbone), so it has no `@L`.

Per row: accuracy and macro-F1 mean ± std over seeds, the paired difference to `plain` and to
`setfit` with a 95 % bootstrap interval (seeds and test texts resampled, `experiment.paired_bootstrap`),
ECE, accuracy under the character attack (and its paired difference to `plain` and `setfit`
over the same attacked texts), and training seconds; then the paired difference of each
two rows of `PAIRS` that differ in one setting (`combined` against `combined-nofgm`, ...). Resumable: every finished run is
appended to <out>/quality-runs.jsonl and skipped when the command is run again; quality.json and
quality.md are rewritten after every run.
"""
import argparse, json, os, shutil, sys, tempfile, time, warnings
from dataclasses import replace
from pathlib import Path

import datasets, numpy as np, torch
from fastprogress.fastprogress import progress_bar

from fmcombo.backbone import default_backbone_path, quiet_hf
from fmcombo.data import load_corpus, sample_per_class, fm_dls, label_indices
from fmcombo.learner import fm_learner, DEFAULT_EPOCHS, DEFAULT_LR
from fmcombo.ensemble import classification_scores
from fmcombo.experiment import BUILTIN_RECIPES, Recipe, combined_recipe, get_recipe, paired_bootstrap
from fmcombo.robustness import char_attack
from fmcombo.transfer import ContrastiveStage, PrototypeHead, SupCon, ReinitTop, LayerLRDecay

SETTINGS = {'bbc_news': 8, 'tweet_sentiment': 32}
TRANSFER = {'contrastive': lambda: [ContrastiveStage()], 'contrastive+prototype': lambda: [ContrastiveStage(), PrototypeHead()],
            'supcon': lambda: [SupCon()], 'supcon-w0.5': lambda: [SupCon(weight=0.5)], 'supcon-w0.9': lambda: [SupCon(weight=0.9)],
            'prototype': lambda: [PrototypeHead()], 'reinit': lambda: [ReinitTop(1)],
            'llrd': lambda: [LayerLRDecay(0.9)]}
VARIANTS = {'norm': Recipe('norm', 'plain fine-tuning with the head on the L2-normalised mean embedding times a learned scale', pooling='norm'),
         # the schedule: 10 epochs of 40 BBC texts in batches of 16 are only 30 optimiser steps
         'epochs30': Recipe('epochs30', 'plain fine-tuning for 30 epochs instead of 10 (the same one-cycle schedule and peak learning rate)', epochs=30),
         # the student stage is most of combined's cost on BBC, and FGM adds a second forward and backward pass to each of its steps
         'combined-nofgm': replace(combined_recipe(), name='combined-nofgm', doc='combined with a plain student: no FGM in the distillation stage',
                                   distill={**combined_recipe().distill, 'cbs': []}),
         # is the student under-trained in 3 epochs? (FGM's gain on BBC's student and epochs30's mean there asked it)
         'combined-student5': replace(combined_recipe(), name='combined-student5', doc='combined with 5 epochs of its student instead of 3',
                                      distill={**combined_recipe().distill, 'epochs': 5}),
         # SupCon is the one member-level technique with a measured gain on BBC News (+0.9 [+0.1, +1.9] at 5 paired seeds): in combined's members
         'combined-supcon': replace(combined_recipe(), name='combined-supcon', doc="combined with SupCon (Gunel et al. 2021) beside cross-entropy in its members' training",
                                    cbs=['SupCon']),
         # the soup as it was before its members shared their head's initialisation: five random heads averaged shrink the logits
         'soup-own': replace(BUILTIN_RECIPES['soup'], name='soup-own', doc="the uniform soup of 5 seeds with each member's head initialised from its own seed",
                             ensemble={**BUILTIN_RECIPES['soup'].ensemble, 'shared_head': False})}
PEERS = ('setfit', 'trainer', 'trainer-neftune')
ALL_ROWS = list(dict.fromkeys(list(BUILTIN_RECIPES) + list(TRANSFER) + list(VARIANTS) + list(PEERS)))   # a transfer row that is also a built-in recipe is trained as above
QUICK_ROWS = ['plain', 'supcon', 'trainer']

def test_subset(ds, size:int):
    "A fixed stratified subset of the test split (the whole split when `size` is 0 or too large), as adversarial_accuracy.py picks it"
    test = ds['test']
    if not size or size >= len(test): return test
    return test.train_test_split(test_size=size, stratify_by_column='label', seed=0)['test']

class Predictor:
    "A peer's model behind the `vocab` and `predict_texts` that fmcombo's attacks and scores take"
    def __init__(self, vocab, probs_fn): self.vocab, self.probs_fn = list(vocab), probs_fn
    def predict_texts(self, texts, bs=64, progress=False):
        p = np.asarray(self.probs_fn(list(texts), bs), dtype=np.float64)
        return [self.vocab[i] for i in p.argmax(1)], p

def split_row(row:str) -> tuple:
    "('plain', 256) for 'plain@256'; ('plain', None) for 'plain' (the default length)"
    base, at, n = row.partition('@')
    if not at: return row, None
    if not n.isdigit() or not 8 <= int(n) <= 512:
        raise ValueError(f"{row!r}: after '@' comes the number of tokens read from each text, a whole number from 8 to 512 (such as plain@256)")
    if base == 'setfit': raise ValueError(f"{row!r}: SetFit reads as many tokens as its body's sentence-transformers folder says; it has no '@L' variant")
    return base, int(n)

def row_order(seen) -> list:
    "The rows of `seen` in the order of `ALL_ROWS`, each row's `@L` variants after it, shortest first"
    seen = set(seen)
    return [r for b in ALL_ROWS for r in sorted((x for x in seen if split_row(x)[0] == b), key=lambda x: split_row(x)[1] or 0)]

def train_fmcombo(row, dls, seed, unlabelled):
    "(a model with `predict_texts`, training seconds) for a built-in recipe or a transfer technique"
    t0 = time.perf_counter()
    if row in TRANSFER:
        learn = fm_learner(dls, cbs=TRANSFER[row]())
        with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(DEFAULT_EPOCHS, DEFAULT_LR)
        return learn, time.perf_counter() - t0
    res = (VARIANTS.get(row) or get_recipe(row)).train(dls, seed, unlabelled=unlabelled)
    return res.model, time.perf_counter() - t0

def train_setfit(backbone, texts, labels, vocab, seed):
    "SetFit with its default training arguments on `backbone` as body"
    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments
    with quiet_hf(), warnings.catch_warnings():
        warnings.simplefilter('ignore')
        model = SetFitModel.from_pretrained(backbone)
        trainer = Trainer(model=model, args=TrainingArguments(output_dir=tempfile.mkdtemp(prefix='setfit-'), seed=seed, show_progress_bar=False),
                          train_dataset=Dataset.from_dict(dict(text=texts, label=labels)),
                          metric=lambda pred, ref: {'accuracy': float(np.mean(np.asarray(pred) == np.asarray(ref)))})
        t0 = time.perf_counter(); trainer.train(); secs = time.perf_counter() - t0
    # its logistic-regression head was fitted on the label indices 0..k-1 (every class is in the sample): columns in vocab order
    return Predictor(vocab, lambda ts, bs: model.predict_proba(ts, batch_size=bs, as_numpy=True)), secs

def train_trainer(backbone, texts, labels, vocab, seed, max_len, neftune=None):
    "The transformers Trainer with its default arguments on `AutoModelForSequenceClassification`"
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, Trainer, TrainingArguments, DataCollatorWithPadding, PrinterCallback, set_seed
    tok = AutoTokenizer.from_pretrained(backbone)
    out = tempfile.mkdtemp(prefix='quality-trainer-')
    try:
        with quiet_hf(), warnings.catch_warnings():
            warnings.simplefilter('ignore')
            set_seed(seed)
            model = AutoModelForSequenceClassification.from_pretrained(backbone, num_labels=len(vocab))
            ds = Dataset.from_dict(dict(text=texts, label=labels)).map(lambda b: tok(b['text'], truncation=True, max_length=max_len), batched=True, remove_columns=['text'])
            args = TrainingArguments(output_dir=out, seed=seed, report_to=[], save_strategy='no', logging_strategy='no',
                                     disable_tqdm=True, use_cpu=not torch.cuda.is_available(), neftune_noise_alpha=neftune)
            trainer = Trainer(model=model, args=args, train_dataset=ds, data_collator=DataCollatorWithPadding(tok))
            trainer.remove_callback(PrinterCallback)   # it prints the final metrics dict
            t0 = time.perf_counter(); trainer.train(); secs = time.perf_counter() - t0
    finally: shutil.rmtree(out, ignore_errors=True)
    model.eval()
    dev = next(model.parameters()).device
    @torch.no_grad()
    def probs(ts, bs):
        ps = []
        for i in range(0, len(ts), bs):
            enc = tok(ts[i:i+bs], truncation=True, max_length=max_len, padding=True, return_tensors='pt').to(dev)
            ps.append(model(**enc).logits.float().softmax(-1).cpu().numpy())
        return np.concatenate(ps)
    return Predictor(vocab, probs), secs

def one_run(row, corpus, n, seed, ds, test, backbone, attack_n):
    row, max_len = split_row(row)
    sample = sample_per_class(ds['train'], n, seed=seed)
    dls = fm_dls(sample, backbone=backbone, bs=16, seed=seed, max_len=max_len or 128)
    vocab, data = list(dls.vocab), dls.train.dataset
    texts, labels = list(data.texts), list(data.labels)
    names = test.features['label'].names if hasattr(test.features['label'], 'names') else None
    y = label_indices([names[l] for l in test['label']] if names else list(test['label']), vocab, 'test labels')
    if row == 'setfit': model, secs = train_setfit(backbone, texts, labels, vocab, seed)
    elif row.startswith('trainer'): model, secs = train_trainer(backbone, texts, labels, vocab, seed, dls.max_len, 5. if row == 'trainer-neftune' else None)
    else:
        seen = set(texts)
        pool = [t for t in ds['train']['text'] if t not in seen]
        model, secs = train_fmcombo(row, dls, seed, pool)
    _, probs = model.predict_texts(list(test['text']), bs=64)
    scores = classification_scores(probs, y, len(vocab))
    rec = dict(corpus=corpus, n_per_class=n, row=row if max_len is None else f'{row}@{max_len}', seed=seed, accuracy=scores['accuracy'], macro_f1=scores['macro_f1'],
               ece=scores['ece'], train_seconds=round(secs, 1), correct=''.join('1' if c else '0' for c in probs.argmax(1) == y))
    if attack_n:
        run = char_attack(model, test, n=attack_n, seed=0, progress=False)   # the same attacked texts for every row and seed
        rec['char_attack_accuracy'] = run.summary()['accuracy under attack']
        rec['attack_correct'] = ''.join('1' if r.status == 'failed' else '0' for r in sorted(run.records, key=lambda r: r.index))   # still right after the attack
    return rec

def _ms(xs):
    xs = [x for x in xs if x is not None]
    if not xs: return ''
    return f"{100*np.mean(xs):.1f} ± {100*np.std(xs, ddof=1):.1f}" if len(xs) > 1 else f"{100*xs[0]:.1f}"

def _paired(runs, row, ref, field='correct'):
    "mean paired accuracy difference to `ref` with its 95 % bootstrap interval, over the seeds both have (`field`: 'attack_correct' for accuracy under the attack)"
    a = {r['seed']: r for r in runs if r['row'] == row and field in r}
    b = {r['seed']: r for r in runs if r['row'] == ref and field in r}
    seeds = sorted(set(a) & set(b))
    if row == ref or not seeds: return None
    bits = lambda rs: np.array([[c == '1' for c in rs[s][field]] for s in seeds])
    d, lo, hi = paired_bootstrap(bits(a), bits(b))
    return dict(diff=round(d, 4), lo=round(lo, 4), hi=round(hi, 4), seeds=len(seeds))

def table(runs, rows):
    out = []
    for (corpus, n) in sorted({(r['corpus'], r['n_per_class']) for r in runs}):
        rs = [r for r in runs if (r['corpus'], r['n_per_class']) == (corpus, n)]
        for row in rows:
            mine = sorted((r for r in rs if r['row'] == row), key=lambda r: r['seed'])
            if not mine: continue
            out.append(dict(setting=f'{corpus}-{n}', row=row, seeds=len(mine),
                            accuracy=_ms([r['accuracy'] for r in mine]), macro_f1=_ms([r['macro_f1'] for r in mine]),
                            vs_plain=_paired(rs, row, 'plain'), vs_setfit=_paired(rs, row, 'setfit'),
                            attack_vs_plain=_paired(rs, row, 'plain', 'attack_correct'), attack_vs_setfit=_paired(rs, row, 'setfit', 'attack_correct'),
                            ece=_ms([r['ece'] for r in mine]), char_attack=_ms([r.get('char_attack_accuracy') for r in mine]),
                            train_s=round(float(np.mean([r['train_seconds'] for r in mine])), 1),
                            per_seed=' '.join(f"{r['seed']}:{100*r['accuracy']:.1f}" for r in mine)))
    return out

PAIRS = (('combined', 'combined-nofgm', "FGM on combined's student"),
         ('combined-student5', 'combined', "5 epochs of combined's student against 3"),
         ('combined-supcon', 'combined', "SupCon in combined's members against none"),
         ('contrastive+prototype', 'contrastive', "the head from class prototypes after the contrastive stage, as SetFit fits its head on the tuned body, against a random head"),
         ('soup', 'soup-own', "the soup's members' heads from one seed against each from its own"),
         ('supcon', 'supcon-w0.9', "SupCon's default weight 0.1 against 0.9 (Gunel et al.'s few-shot best)"),
         ('supcon-w0.5', 'supcon', "SupCon's weight 0.5 against its default 0.1"))

def pairs(runs):
    "The paired differences between the rows of `PAIRS` that differ in one setting, where both have runs"
    out = []
    for (corpus, n) in sorted({(r['corpus'], r['n_per_class']) for r in runs}):
        rs = [r for r in runs if (r['corpus'], r['n_per_class']) == (corpus, n)]
        for row, ref, what in PAIRS:
            p = _paired(rs, row, ref)
            if p: out.append(dict(setting=f'{corpus}-{n}', row=row, ref=ref, what=what, **p))
    return out

def _ci(p): return '' if p is None else f"{100*p['diff']:+.1f} [{100*p['lo']:+.1f}, {100*p['hi']:+.1f}]"

def markdown(tab, info, prs=()):
    "quality.md: the table, the paired differences of `PAIRS`, then how it was measured (the character attack's column only when texts were attacked)"
    attack = bool(info['attack_n'])
    cols = ['setting', 'row', 'seeds', 'accuracy', 'macro-F1', 'Δ vs plain', 'Δ vs SetFit', 'ECE'] + ['char attack', 'Δ attacked vs plain', 'Δ attacked vs SetFit']*attack + ['train s', 'per seed']
    lines = ["# Few-shot quality: fmcombo against SetFit and the transformers Trainer", '',
             f"Backbone `{info['backbone']}`; a stratified test subset of {info['test_size']} texts (a smaller test split is used whole); "
             + (f"character attack on {info['attack_n']} of them." if attack else "no character attack (`--attack-n 0`)."), '',
             f"Accuracy, macro-F1{', ECE and accuracy under the character attack' if attack else ' and ECE'} are mean ± std over seeds (%); "
             "the paired differences are accuracy points with a 95 % bootstrap interval over seeds and test texts"
             + (" (the attacked ones: accuracy under the attack, over the same attacked texts)" if attack else '') + "; "
             "train s is the mean training wall time of a run in seconds (one torch thread; the runs of different commands may have shared the machine differently).", '',
             '| ' + ' | '.join(cols) + ' |', '|' + '---|'*len(cols)]
    for r in tab:
        cells = [r['setting'], r['row'], r['seeds'], r['accuracy'], r['macro_f1'], _ci(r['vs_plain']), _ci(r['vs_setfit']), r['ece']] + [r['char_attack'], _ci(r.get('attack_vs_plain')), _ci(r.get('attack_vs_setfit'))]*attack + [r['train_s'], r['per_seed']]
        lines.append('| ' + ' | '.join(map(str, cells)) + ' |')
    if prs:
        lines += ['', '## Rows that differ in one setting', '', 'Paired accuracy differences, points, with a 95 % bootstrap interval over the seeds both rows have and the test texts:', '',
                  '| setting | row | against | what differs | Δ | seeds |', '|---|---|---|---|---|---|']
        lines += [f"| {p['setting']} | {p['row']} | {p['ref']} | {p['what']} | {_ci(p)} | {p['seeds']} |" for p in prs]
    lines += ['', '## How it was measured', '', 'Each run was appended to `quality-runs.jsonl` as it finished, by these commands:', '']
    lines += [f'- `{c}`' for c in info['commands']]
    if info.get('renamed'):
        lines += ['', "Runs measured under an earlier row name, renamed when the recipe behind that name changed (the commands above give "
                  "the current names; each renamed run trains now what it trained then): "
                  + '; '.join(f"{n} runs of `{row}` measured as `{old}`" for row, old, n in info['renamed']) + '.']
    if info['runs_without_command']:
        lines += ['', f"{info['runs_without_command']} runs were measured before the runs file recorded each run's command (by the same script, the settings above)."]
    return '\n'.join(lines) + '\n'

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--corpora', nargs='+', default=list(SETTINGS), choices=list(SETTINGS))
    ap.add_argument('--rows', nargs='+', default=None, help=f'rows to run (default: all): {" ".join(ALL_ROWS)}; ROW@L reads the first L tokens of each text instead of 128')
    ap.add_argument('--seeds', type=int, nargs='+', default=None, help='default: 0 1 2 3 4 (0 1 with --quick)')
    ap.add_argument('--test-size', type=int, default=2000, help='stratified test subset; 0 = the whole test split')
    ap.add_argument('--attack-n', type=int, default=200, help='texts attacked by the character attack; 0 = no attack')
    ap.add_argument('--backbone', default=None, help='backbone folder; default: the offline default backbone')
    ap.add_argument('--out', default='benchmarks/results/quality', help='folder of quality.json, quality.md and the runs file')
    ap.add_argument('--quick', action='store_true', help='2 seeds x 3 rows on the tiny backbone, small test subset: minutes')
    ap.add_argument('--collect', action='store_true', help='train nothing: rewrite quality.json and quality.md from the runs file (after runs in several processes; give the runs\' --test-size and --attack-n)')
    a = ap.parse_args(argv)
    datasets.disable_progress_bars()
    if a.quick:
        from fmcombo.testing import tiny_backbone   # benchmarks may use the test backbone; the library never does
        a.backbone, a.seeds, a.rows = a.backbone or tiny_backbone(), a.seeds or [0, 1], a.rows or QUICK_ROWS
        a.corpora, a.test_size, a.attack_n = ['bbc_news'], min(a.test_size, 100), min(a.attack_n, 10)
        SETTINGS['bbc_news'] = 4   # 4 texts per class: the tiny backbone learns nothing more from 8
    rows, a.seeds = a.rows or ALL_ROWS, a.seeds or [0, 1, 2, 3, 4]
    for r in rows:
        try: base, _ = split_row(r)
        except ValueError as e: ap.error(f"--rows: {e}")
        if base not in ALL_ROWS: ap.error(f"--rows: unknown {r!r}; known rows are {ALL_ROWS}, each optionally with @L (such as plain@256)")
    backbone = a.backbone or default_backbone_path()
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    runs_file = out/'quality-runs.jsonl'
    def read_runs():
        "The runs file's records (a line another process is still writing is skipped)"
        recs = []
        for l in (runs_file.read_text().splitlines() if runs_file.exists() else []):
            try: recs.append(json.loads(l))
            except json.JSONDecodeError: pass
        return recs
    settings = dict(test_size=a.test_size, attack_n=a.attack_n)   # a run's settings beyond its key; runs of other settings are not mixed in
    run_settings = lambda r: r.get('settings', dict(test_size=2000, attack_n=0))   # runs recorded before settings were: the defaults they ran with
    key = lambda r: (r['corpus'], r['n_per_class'], r['row'], r['seed'], r.get('backbone'), tuple(sorted(run_settings(r).items())))
    command = ('python benchmarks/quality.py ' + ' '.join(sys.argv[1:] if argv is None else argv)).strip()
    info = dict(backbone=backbone if a.backbone else 'default (all-MiniLM-L6-v2)', test_size=a.test_size,
                attack_n=a.attack_n, seeds=a.seeds, epochs=DEFAULT_EPOCHS, lr=DEFAULT_LR, torch_threads=torch.get_num_threads())
    jobs = [] if a.collect else [(c, SETTINGS[c], s, row) for c in a.corpora for s in a.seeds for row in rows]   # seeds outer: a partial run stays paired
    t_start = time.perf_counter()
    def write():
        "quality.json and quality.md from every run of this backbone in the runs file (another process may have added some)"
        every = {}
        for r in read_runs(): every.setdefault(key(r), r)   # the first run of a key, should two processes have measured it
        mine = [r for r in every.values() if r.get('backbone') == backbone and run_settings(r) == settings]
        info['wall_seconds'] = time.perf_counter() - t_start
        info['commands'] = list(dict.fromkeys(r['command'] for r in mine if 'command' in r))   # the commands that measured these runs
        info['runs_without_command'] = sum('command' not in r for r in mine)
        renamed = {}
        for r in mine:
            if 'measured_as' in r: renamed[(r['row'], r['measured_as'])] = renamed.get((r['row'], r['measured_as']), 0) + 1
        info['renamed'] = [[row, old, n] for (row, old), n in sorted(renamed.items())]
        tab, prs = table(mine, row_order(x['row'] for x in mine)), pairs(mine)
        for name, text in (('quality.json', json.dumps(dict(**info, table=tab, pairs=prs, runs=[{k: v for k, v in r.items() if k not in ('correct', 'attack_correct')} for r in mine]), indent=1)),
                           ('quality.md', markdown(tab, info, prs))):
            (out/f'{name}.tmp').write_text(text); os.replace(out/f'{name}.tmp', out/name)   # whole, for a reader in another process
    for corpus, n, seed, row in progress_bar(jobs):
        if key(dict(corpus=corpus, n_per_class=n, row=row, seed=seed, backbone=backbone, settings=settings)) in {key(r) for r in read_runs()}:
            continue   # done, by this process or another
        ds = load_corpus(corpus)
        rec = one_run(row, corpus, n, seed, ds, test_subset(ds, a.test_size), backbone, a.attack_n)
        rec.update(backbone=backbone, settings=settings, command=command)
        with open(runs_file, 'a') as f: f.write(json.dumps(rec) + '\n')
        print(f"{corpus}-{n} {row:22s} seed {seed}: {rec['accuracy']:.1%} ({rec['train_seconds']:.0f}s training)", flush=True)
        write()
    if runs_file.exists(): write()   # also when every job was done already
    if (out/'quality.md').exists(): print((out/'quality.md').read_text())
    return out

if __name__ == '__main__': main()
