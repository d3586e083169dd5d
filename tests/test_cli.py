"The `fmcombo` command end to end on a temporary CSV (tiny backbone): in-process through `main`, one case in a subprocess."
import contextlib, io, json, subprocess, sys
from pathlib import Path
import pandas as pd, pytest
from fmcombo.cli import main
from fmcombo.experiment import read_table, Recipe
from fmcombo.robustness import Corrected, TypoCorrector

FMCOMBO = str(Path(sys.executable).parent/'fmcombo')

def run(*argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err): code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()

@pytest.fixture(scope='module')
def data(tmp_path_factory, bbc):
    d = tmp_path_factory.mktemp('cli')
    df = read_table(bbc['train'].select(range(0, 1700, 10))).rename(columns={'text': 'article', 'label': 'topic'})
    df.to_csv(d/'bbc.csv', index=False)
    df.iloc[:30].to_csv(d/'test.csv', index=False)
    Recipe('quick', epochs=1, lr=1e-3).save(d/'quick.yaml')
    return d

def test_train_predict_evaluate_compare(data, tiny, tmp_path):
    cols = ['--text-col', 'article', '--label-col', 'topic']
    code, out, err = run('train', '--data', data/'bbc.csv', *cols, '--recipe', data/'quick.yaml', '--n-per-class', 4, '--backbone', tiny, '--out', tmp_path/'m')
    assert code == 0, err
    assert 'saved to' in out and (tmp_path/'m'/'fm.json').exists() and (tmp_path/'m'/'recipe.json').exists()
    code, out, err = run('predict', tmp_path/'m', '--text', 'Shares fell sharply.')
    assert code == 0 and out.split('\t')[0] in {'business', 'entertainment', 'politics', 'sport', 'tech'}, (out, err)
    (tmp_path/'new.txt').write_text('Shares fell.\nThe striker scored.\n')
    code, out, err = run('predict', tmp_path/'m', '--file', tmp_path/'new.txt', '--out', tmp_path/'p.csv')
    assert code == 0, err
    assert list(pd.read_csv(tmp_path/'p.csv').columns) == ['text', 'label', 'probability']
    code, out, err = run('predict', tmp_path/'m', '--file', data/'test.csv', '--text-col', 'article')
    assert code == 0 and len(out.splitlines()) == 30, err
    code, out, err = run('evaluate', tmp_path/'m', '--data', data/'test.csv', *cols, '--attack', 'char', '--attacked', 5)
    assert code == 0 and '30 texts: accuracy' in out and 'accuracy under attack' in out, err
    code, out, err = run('compare', '--data', data/'bbc.csv', *cols, '--recipes', f"plain,{data/'quick.yaml'}", '--n-per-class', 4,
                         '--seeds', '0', '--backbone', tiny, '--out', tmp_path/'cmp')
    assert code == 0, err
    assert 'report:' in out and (tmp_path/'cmp'/'report.html').exists() and 'quick' in out

def scored(monkeypatch):
    "The (model, test) of every `score_model` call the command line makes"
    import fmcombo.cli as cli
    calls, real = [], cli.score_model
    monkeypatch.setattr(cli, 'score_model', lambda model, test, **kw: calls.append((model, test.copy())) or real(model, test, **kw))
    return calls

def test_correct_typos_in_predict_and_evaluate(data, tiny, tmp_path, monkeypatch):
    "--correct-typos: the model classifies (and is attacked through) the corrected texts; predict --out says what it saw"
    cols = ['--text-col', 'article', '--label-col', 'topic']
    code, out, err = run('train', '--data', data/'bbc.csv', *cols, '--recipe', data/'quick.yaml', '--n-per-class', 4, '--backbone', tiny, '--out', tmp_path/'m')
    assert code == 0, err
    texts = ['Shares in the compnay fell.', 'The company said shares fell.', 'The company said so.']   # each other word: twice, so known
    (tmp_path/'new.txt').write_text('\n'.join(texts) + '\n')
    code, out, err = run('predict', tmp_path/'m', '--file', tmp_path/'new.txt', '--out', tmp_path/'p.csv', '--correct-typos')
    assert code == 0, err
    p = pd.read_csv(tmp_path/'p.csv')
    assert list(p.columns) == ['text', 'corrected', 'label', 'probability'] and p['text'].tolist() == texts
    assert p['corrected'].tolist() == ['Shares in the company fell.'] + texts[1:]
    code, out2, err = run('predict', tmp_path/'m', '--text', 'Shares in the company fell.')
    assert code == 0 and out2.split('\t')[0] == p['label'][0], (out2, err)   # the corrected text's label
    calls = scored(monkeypatch)
    code, out, err = run('evaluate', tmp_path/'m', '--data', data/'test.csv', *cols, '--attack', 'char', '--attacked', 5, '--correct-typos')
    assert code == 0 and '30 texts: accuracy' in out and 'accuracy under attack' in out, err
    (model, _), = calls
    assert isinstance(model, Corrected) and isinstance(model.corrector, TypoCorrector)   # scored, and attacked, through the front end

def test_an_ensemble_recipe_saves_and_loads(data, tiny, tmp_path):
    Recipe('ens', ensemble={'k': 2}, epochs=1, lr=1e-3).save(tmp_path/'ens.json')
    code, out, err = run('train', '--data', data/'bbc.csv', '--text-col', 'article', '--label-col', 'topic', '--recipe', tmp_path/'ens.json',
                         '--n-per-class', 2, '--backbone', tiny, '--out', tmp_path/'e')
    assert code == 0, err
    assert json.loads((tmp_path/'e'/'ensemble.json').read_text())['members'] == ['member0', 'member1']
    code, out, err = run('predict', tmp_path/'e', '--text', 'Shares fell.')
    assert code == 0, err

def test_the_console_script(data, tiny, tmp_path):
    "One real subprocess: the installed `fmcombo` script, piped (so plain lines, no bars), and its exit codes"
    r = subprocess.run([FMCOMBO, 'compare', '--data', str(data/'bbc.csv'), '--text-col', 'article', '--label-col', 'topic',
                        '--recipes', f"plain,{data/'quick.yaml'}", '--n-per-class', '4', '--seeds', '0', '--backbone', tiny,
                        '--out', str(tmp_path/'c')], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert '\r' not in r.stdout and '[1/2] plain seed 0: epoch 1/' in r.stdout and 'report:' in r.stdout
    r = subprocess.run([FMCOMBO, 'train', '--data', 'nope.csv', '--out', str(tmp_path/'x')], capture_output=True, text=True, timeout=600)
    # the last line: importing fastai itself may print torch's FutureWarning about torch.jit.script before it
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1] == "fmcombo train: error: data: no file at 'nope.csv'"
    r = subprocess.run([FMCOMBO, '--version'], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and r.stdout.startswith('fmcombo ')

def bad_inputs(data, tiny, tmp_path):
    (tmp_path/'one.csv').write_text('text,label\na,x\nb,x\n')
    (tmp_path/'empty.csv').write_text('text,label\n')
    (tmp_path/'notmodel').mkdir(exist_ok=True); (tmp_path/'notmodel'/'x.txt').write_text('x')
    csv = ['--data', data/'bbc.csv', '--text-col', 'article', '--label-col', 'topic', '--backbone', tiny]
    return [
        (['compare', '--recipes', 'plain,fgn'], 2, "unknown recipe 'fgn'; the built-in recipes are plain, eda"),
        (['train', '--data', tmp_path/'missing.csv', '--out', tmp_path/'m'], 2, 'no file at'),
        (['train', '--data', data/'bbc.csv', '--out', tmp_path/'m'], 2, "column 'text' not found; the columns are ['article', 'topic']"),
        (['train', '--data', tmp_path/'one.csv', '--out', tmp_path/'m'], 2, "single class ['x']"),
        (['compare', '--data', tmp_path/'one.csv'], 2, "single class ['x']"),
        (['train', '--data', tmp_path/'empty.csv', '--out', tmp_path/'m'], 2, 'has no rows'),
        (['compare', *csv[:6], '--backbone', 'nobody/no-such-model'], 2, "backbone 'nobody/no-such-model' could not be loaded"),
        (['compare', *csv, '--n-per-class', 1000], 2, 'has only'),
        (['predict', tmp_path/'notmodel', '--text', 'x'], 2, 'is not a model saved by fmcombo train'),
        (['predict', tmp_path/'nodir', '--text', 'x'], 2, 'does not exist'),
        (['evaluate', tmp_path/'notmodel', '--data', data/'bbc.csv'], 2, 'is not a model saved by fmcombo train'),
        (['compare', '--seeds', '0,x'], 2, '--seeds takes integers'),
        (['predict', tmp_path/'notmodel'], 2, 'one of the arguments --text --file is required'),
        (['compare', '--n-per-class', 4, '--all'], 2, 'not allowed with argument'),
        (['frobnicate'], 2, 'invalid choice'),
    ]

def test_bad_input_one_line_no_traceback(data, tiny, tmp_path):
    for argv, want_code, want in bad_inputs(data, tiny, tmp_path):
        code, out, err = run(*argv)
        assert code == want_code and want in err, (argv, code, err)
        assert 'Traceback' not in err
        if code == 2 and not err.startswith('usage'): assert len(err.strip().splitlines()) == 1, err

def test_help_has_examples():
    for cmd in ('compare', 'train', 'predict', 'evaluate', 'recipes', 'demo'):
        code, out, _ = run(cmd, '--help')
        assert code == 0 and 'example' in out and f'fmcombo {cmd if cmd != "demo" else "compare"}' in out, cmd

@pytest.fixture(scope='module')
def two_tasks(tmp_path_factory):
    "A CSV with two label columns: which animal (cat/dog) and which mood (good/bad); every 4th row has no mood"
    import random
    rng, rows = random.Random(0), []
    filler = 'the a my our this that old new big small quiet loud house garden street park'.split()
    for i in range(64):
        animal, mood = rng.choice(['cat', 'dog']), rng.choice(['good', 'bad'])
        words = rng.sample(filler, 5) + [animal, animal, mood, mood]; rng.shuffle(words)
        rows.append((' '.join(words), animal, mood if i % 4 else None))
    d = tmp_path_factory.mktemp('mt')
    pd.DataFrame(rows, columns=['text', 'animal', 'mood']).to_csv(d/'pets.csv', index=False)
    Recipe('quick', epochs=2, lr=1e-2).save(d/'quick.yaml')
    return d

def test_several_label_columns_train_one_multitask_model(two_tasks, tiny, tmp_path, monkeypatch):
    "train / predict / evaluate / compare with two --label-col: one model with a head per column"
    d, cols = two_tasks, ['--label-col', 'animal', '--label-col', 'mood']
    code, out, err = run('train', '--data', d/'pets.csv', *cols, '--recipe', d/'quick.yaml', '--backbone', tiny, '--out', tmp_path/'m')
    assert code == 0, err
    assert json.loads((tmp_path/'m'/'fm.json').read_text())['tasks'] == ['animal', 'mood']
    code, out, err = run('predict', tmp_path/'m', '--text', 'my cat is good')
    assert code == 0 and out.startswith('animal=') and '\tmood=' in out, (out, err)
    code, out, err = run('predict', tmp_path/'m', '--file', d/'pets.csv', '--out', tmp_path/'p.csv')
    assert code == 0, err
    assert list(pd.read_csv(tmp_path/'p.csv').columns) == ['text', 'animal', 'animal_prob', 'mood', 'mood_prob']
    (tmp_path/'typo.txt').write_text('cat goood\ndog good\ncat good\n')   # --correct-typos: read whole, every task on the corrected texts
    code, out, err = run('predict', tmp_path/'m', '--file', tmp_path/'typo.txt', '--out', tmp_path/'c.csv', '--correct-typos')
    c = pd.read_csv(tmp_path/'c.csv')
    assert code == 0 and list(c.columns) == ['text', 'corrected', 'animal', 'animal_prob', 'mood', 'mood_prob'], (err, c.columns)
    assert c['text'][0] == 'cat goood' and c['corrected'][0] == 'cat good'
    pd.concat([pd.read_csv(d/'pets.csv'), pd.DataFrame({'text': ['cat goood'], 'animal': ['cat'], 'mood': ['good']})]).to_csv(tmp_path/'typo.csv', index=False)
    calls = scored(monkeypatch)
    code, out, err = run('evaluate', tmp_path/'m', '--data', tmp_path/'typo.csv', *cols, '--correct-typos')
    assert code == 0 and '65 texts: accuracy' in out, (out, err)
    (_, test), = calls
    assert 'cat goood' not in set(test['text']) and test['text'].iloc[-1] == 'cat good'   # every task scored on the corrected texts
    code, out, err = run('evaluate', tmp_path/'m', '--data', d/'pets.csv')   # no --label-col: the columns named like the tasks
    assert code == 0 and '64 texts: accuracy' in out and 'animal: 64 labels' in out and 'mood: 48 labels' in out, (out, err)
    code, out, err = run('compare', '--data', d/'pets.csv', *cols, '--recipes', f"plain,{d/'quick.yaml'}", '--n-per-class', 4,
                         '--seeds', '0', '--backbone', tiny, '--out', tmp_path/'cmp')
    assert code == 0, err
    assert 'animal accuracy %' in out and 'mood accuracy %' in out and (tmp_path/'cmp'/'report.html').exists(), out
    run_ = json.loads((tmp_path/'cmp'/'runs'/'quick-seed0.json').read_text())
    assert set(run_['tasks']) == {'animal', 'mood'} and run_['n_train'] >= 8

def test_several_label_columns_bad_input(two_tasks, tiny, tmp_path):
    d = two_tasks
    for argv, want in [
        (['train', '--data', d/'pets.csv', '--label-col', 'animal', '--label-col', 'urgency', '--out', tmp_path/'x'],
         "column 'urgency' not found; the columns are ['text', 'animal', 'mood']"),
        (['compare', '--data', d/'pets.csv', '--label-col', 'animal', '--label-col', 'animal'], 'name a column twice'),
        (['compare', '--data', d/'pets.csv', '--label-col', 'animal', '--label-col', 'mood', '--recipes', 'plain,ensemble'],
         "recipe 'ensemble' uses ['ensemble'], which train single-task models"),
        (['compare', '--data', d/'pets.csv', '--label-col', 'animal', '--label-col', 'mood', '--recipes', 'plain', '--robustness'], 'robustness=True needs one label column'),
    ]:
        code, out, err = run(*argv)
        assert code == 2 and want in err and 'Traceback' not in err, (argv, code, err)

@pytest.mark.parametrize('args,expect', [
    (['--lr', '-1'], '--lr=-1.0: expected a positive, finite number'),
    (['--lr', 'nan'], '--lr=nan: expected a positive, finite number'),
    (['--epochs', '0'], '--epochs=0: expected an integer ≥ 1'),
    (['--nproc', '0'], '--nproc=0: expected an integer ≥ 1'),
    (['--n-per-class', '0'], '--n-per-class=0: expected an integer ≥ 1'),
])
def test_train_bad_numbers_refused_up_front(tmp_path, args, expect):
    "Refused before any data or backbone is read (the data file does not even exist), exit code 2, nothing written"
    code, out, err = run('train', '--data', tmp_path/'nope.csv', '--out', tmp_path/'m', *args)
    assert code == 2 and expect in err, err
    assert list(tmp_path.iterdir()) == []

def test_resume_without_a_checkpoint_and_with_an_ensemble(data, tiny, tmp_path):
    code, out, err = run('train', '--data', data/'bbc.csv', '--out', tmp_path/'m', '--resume')
    assert code == 2 and '--resume: no checkpoint at' in err, err
    Recipe('ens', ensemble={'k': 2}, epochs=1).save(tmp_path/'ens.json')
    code, out, err = run('train', '--data', data/'bbc.csv', '--recipe', tmp_path/'ens.json', '--out', tmp_path/'m', '--resume')
    assert code == 2 and "uses ['ensemble']" in err, err

def test_train_resume_goes_on(data, tiny, tmp_path):
    "A run stopped after its first epoch leaves a checkpoint; --resume finishes it with the uninterrupted run's weights"
    from fmcombo.cli import checkpoint_path
    from fmcombo.learner import load_fm_learner
    args = ['train', '--data', data/'bbc.csv', '--text-col', 'article', '--label-col', 'topic', '--recipe', data/'quick.yaml',
            '--epochs', 2, '--n-per-class', 2, '--backbone', tiny]
    assert run(*args, '--out', tmp_path/'a')[0] == 0
    assert not checkpoint_path(tmp_path/'a').exists()   # removed once the fit finished
    from fastai.callback.core import Callback
    import fmcombo.experiment as ex
    class Stop(Callback):
        order = 99
        def after_epoch(self): raise KeyboardInterrupt
    old = ex._fit
    ex._fit = lambda learn, recipe, epochs, log, stage, fit_cbs=None: old(learn, recipe, epochs, log, stage, list(fit_cbs or []) + [Stop()])
    try: code, out, err = run(*args, '--out', tmp_path/'b')
    finally: ex._fit = old
    assert code == 1 and (checkpoint_path(tmp_path/'b')/'fit.json').exists() and not (tmp_path/'b').exists(), err
    code, out, err = run(*args, '--out', tmp_path/'b', '--resume')
    assert code == 0, err
    wa = load_fm_learner(tmp_path/'a').model.head[1].weight
    wb = load_fm_learner(tmp_path/'b').model.head[1].weight
    assert (wa - wb).abs().max().item() < 1e-6

def test_nproc_relaunches_with_torchrun(monkeypatch, tmp_path):
    "--nproc N starts `python -m fmcombo.cli` with the same arguments on N processes through torchrun"
    import fmcombo.cli as cli
    from fmcombo.distributed import torchrun_command
    seen = []
    monkeypatch.setattr(cli.subprocess, 'run', lambda cmd: seen.append(cmd) or subprocess.CompletedProcess(cmd, 0))
    monkeypatch.delenv('WORLD_SIZE', raising=False)
    argv = ['train', '--data', 'x.csv', '--out', str(tmp_path/'m'), '--nproc', '2']
    assert run(*argv)[0] == 0
    assert seen == [torchrun_command(2, ['-m', 'fmcombo.cli', *argv])]

def test_nproc_needs_a_batch_size_it_divides(monkeypatch, data, tmp_path):
    monkeypatch.setenv('WORLD_SIZE', '3')   # as inside torchrun: no re-launch
    code, out, err = run('train', '--data', data/'bbc.csv', '--out', tmp_path/'m', '--nproc', '3')
    assert code == 2 and 'must be a multiple of it' in err, err

def test_predict_file_streams_every_task(tiny, tmp_path):
    "A multi-task model's --file --out goes through predict_file: every task's label and probability"
    df = pd.DataFrame({'text': ['cat good', 'dog bad', 'cat bad', 'dog good'] * 3, 'animal': ['cat', 'dog', 'cat', 'dog'] * 3,
                       'mood': ['good', 'bad', 'bad', 'good'] * 3})
    df.to_csv(tmp_path/'t.csv', index=False)
    Recipe('quick', epochs=1, lr=1e-3).save(tmp_path/'q.yaml')
    code, out, err = run('train', '--data', tmp_path/'t.csv', '--label-col', 'animal', '--label-col', 'mood', '--recipe', tmp_path/'q.yaml',
                         '--backbone', tiny, '--out', tmp_path/'m')
    assert code == 0, err
    (tmp_path/'in.txt').write_text('cat good\n\ndog bad\n')
    code, out, err = run('predict', tmp_path/'m', '--file', tmp_path/'in.txt', '--out', tmp_path/'p.csv')
    assert code == 0 and 'wrote 2 predictions' in out, err
    assert list(pd.read_csv(tmp_path/'p.csv').columns) == ['text', 'animal', 'animal_prob', 'mood', 'mood_prob']
