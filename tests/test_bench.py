"`make bench QUICK=1`: the quality and cost benchmarks end to end on the tiny backbone, in minutes"
import json, os, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent

def test_make_bench_quick(tmp_path):
    # the install stamps count as up to date: this checks the benchmarks, not the install
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    cmd = ['make', '-s', 'bench', 'QUICK=1', f'BENCH_OUT={tmp_path}', '-o', '.venv/.fmcombo-installed', '-o', '.venv/.fmcombo-bench-installed']
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1500)
    assert res.returncode == 0, res.stderr[-3000:]
    q = json.loads((tmp_path/'quick'/'quality'/'quality.json').read_text())
    rows = {(r['row'], r['seed']) for r in q['runs']}
    assert rows == {(row, s) for row in ('plain', 'supcon', 'trainer') for s in (0, 1)}, rows   # 2 seeds x 3 rows
    assert all(0 <= r['accuracy'] <= 1 and 'char_attack_accuracy' in r for r in q['runs'])
    md = (tmp_path/'quick'/'quality'/'quality.md').read_text()
    assert '| bbc_news-4 | supcon | 2 |' in md and 'Δ vs plain' in md and 'Δ attacked vs plain' in md
    assert q['table'][1]['attack_vs_plain']['seeds'] == 2 and not any('attack_correct' in r for r in q['runs'])
    for l in (tmp_path/'quick'/'quality'/'quality-runs.jsonl').read_text().splitlines():   # the kept bits are the attacked texts still right
        r = json.loads(l)
        assert len(r['attack_correct']) == 10 and r['attack_correct'].count('1')/10 == pytest.approx(r['char_attack_accuracy'])
    c = json.loads((tmp_path/'quick'/'cost.json').read_text())
    assert set(c['step_seconds_median']) == {'fmcombo', 'raw', 'trainer'} and all(v > 0 for v in c['step_seconds_median'].values())
    assert all('peak_rss_mib' in m for m in c['memory'].values()), c['memory']
    assert c['predict_texts_per_second']['predict_texts'] > 0 and (tmp_path/'quick'/'cost.md').exists()

def test_quality_resumes(tmp_path, monkeypatch):
    "A second run of the same command trains nothing again"
    sys.path.insert(0, str(ROOT/'benchmarks'))
    import quality
    calls = []
    def fake(row, corpus, n, seed, ds, test, backbone, attack_n):
        calls.append((row, seed))
        return dict(corpus=corpus, n_per_class=n, row=row, seed=seed, accuracy=0.5, macro_f1=0.5, ece=0.1, train_seconds=1.,
                    correct='01'*5, char_attack_accuracy=0.4)
    monkeypatch.setattr(quality, 'one_run', fake)
    args = ['--quick', '--rows', 'plain', 'supcon', '--out', str(tmp_path)]
    quality.main(args)
    assert len(calls) == 4
    quality.main(args)
    assert len(calls) == 4
    tab = json.loads((tmp_path/'quality.json').read_text())['table']
    assert [r['row'] for r in tab] == ['plain', 'supcon'] and tab[1]['vs_plain']['diff'] == 0
    quality.main(args + ['--seeds', '2'])   # a second command adds its runs, and is listed beside the first
    q = json.loads((tmp_path/'quality.json').read_text())
    assert len(calls) == 6 and q['commands'] == ['python benchmarks/quality.py ' + ' '.join(a) for a in (args, args + ['--seeds', '2'])]
    quality.main(args + ['--attack-n', '3'])   # other settings: measured afresh, and tabled apart
    assert len(calls) == 10 and len(json.loads((tmp_path/'quality.json').read_text())['runs']) == 4
    quality.main(args)   # back to the first settings: nothing to train, their six runs tabled
    assert len(calls) == 10 and len(json.loads((tmp_path/'quality.json').read_text())['runs']) == 6
    assert all(f'`{c}`' in (tmp_path/'quality.md').read_text() for c in q['commands'])
    (tmp_path/'quality.json').unlink(); (tmp_path/'quality.md').unlink()
    quality.main(['--collect', '--quick', '--out', str(tmp_path)])   # the tables again from the runs file, training nothing
    assert len(calls) == 10 and len(json.loads((tmp_path/'quality.json').read_text())['runs']) == 6
    with pytest.raises(SystemExit): quality.main(['--rows', 'nope', '--out', str(tmp_path)])
    quality.main(['--quick', '--rows', 'plain@256', 'plain', '--out', str(tmp_path)])   # a row at another length: tabled after its row
    assert ('plain@256', 0) in calls and [r['row'] for r in json.loads((tmp_path/'quality.json').read_text())['table']] == ['plain', 'plain@256', 'supcon']
    for bad in ('plain@', 'plain@4', 'plain@x', 'setfit@256', 'nope@256'):
        with pytest.raises(SystemExit): quality.main(['--rows', bad, '--out', str(tmp_path)])

def test_quality_row_lengths():
    "A row's `@L` sets the tokens read from each text, and is refused where it means nothing"
    sys.path.insert(0, str(ROOT/'benchmarks'))
    import quality
    assert quality.split_row('plain') == ('plain', None) and quality.split_row('combined@256') == ('combined', 256)
    for bad, why in (('plain@4', 'from 8 to 512'), ('plain@1e3', 'whole number'), ('setfit@256', 'no \'@L\' variant')):
        with pytest.raises(ValueError, match=why): quality.split_row(bad)
    assert quality.row_order(['supcon', 'plain@256', 'plain', 'plain@64']) == ['plain', 'plain@64', 'plain@256', 'supcon']

def test_quality_combined_variants():
    "`combined-nofgm` and `combined-student5` each differ from `combined` in one setting of the student, nothing else (the teacher is the same, so the rows are paired); `combined-supcon` in its members' callbacks; `soup-own` from `soup` in its heads' seed"
    sys.path.insert(0, str(ROOT/'benchmarks'))
    import quality
    from fmcombo.experiment import get_recipe
    full = get_recipe('combined').to_dict()
    assert full['distill']['cbs'] == [{'FGM': {}}] and full['distill']['epochs'] == 3   # so each change below is a change
    for name, change in (('combined-nofgm', {'cbs': []}), ('combined-student5', {'epochs': 5})):
        v = quality.VARIANTS[name].to_dict()
        assert v == {**full, 'name': name, 'doc': v['doc'], 'distill': {**full['distill'], **change}} and name in quality.ALL_ROWS
    v = quality.VARIANTS['combined-supcon'].to_dict()   # SupCon in the members only: the student's callbacks stay FGM
    assert full['cbs'] == [] and v == {**full, 'name': 'combined-supcon', 'doc': v['doc'], 'cbs': [{'SupCon': {}}]} and 'combined-supcon' in quality.ALL_ROWS
    assert get_recipe('combined').to_dict() == full   # the built-in recipe is left as it was
    soup, own = get_recipe('soup').to_dict(), quality.VARIANTS['soup-own'].to_dict()
    assert soup['ensemble']['shared_head'] is True and own == {**soup, 'name': 'soup-own', 'doc': own['doc'], 'ensemble': {**soup['ensemble'], 'shared_head': False}}

def test_quality_pairs():
    "Rows of `PAIRS` get their paired difference, in quality.json's `pairs` and quality.md, only where both have runs"
    sys.path.insert(0, str(ROOT/'benchmarks'))
    import quality
    run = lambda row, s, bits: dict(corpus='bbc_news', n_per_class=8, row=row, seed=s, accuracy=bits.count('1')/len(bits), macro_f1=0.5, ece=0.1,
                                    train_seconds=1., correct=bits)
    runs = [run('combined', s, '1'*10) for s in (0, 1)] + [run('combined-nofgm', s, '0'*10) for s in (0, 1, 2)] + [run('plain', 0, '1'*10)]
    prs = quality.pairs(runs)
    assert [(p['row'], p['ref'], p['seeds']) for p in prs] == [('combined', 'combined-nofgm', 2)]   # no supcon rows: nothing for them
    assert prs[0]['diff'] == prs[0]['lo'] == prs[0]['hi'] == 1.   # every text of every seed differs alike
    info = dict(backbone='b', test_size=2000, attack_n=0, commands=[], runs_without_command=0)
    md = quality.markdown(quality.table(runs, ['plain', 'combined', 'combined-nofgm']), info, prs)
    assert "| bbc_news-8 | combined | combined-nofgm | FGM on combined's student | +100.0 [+100.0, +100.0] | 2 |" in md
    assert 'differ in one setting' not in quality.markdown(quality.table(runs, ['plain']), info, [])

def test_quality_pairs_name_rows():
    "Every row of `PAIRS` is a row the script trains; `contrastive+prototype` is `contrastive` with a `PrototypeHead` after the stage, nothing else"
    sys.path.insert(0, str(ROOT/'benchmarks'))
    import quality
    from fmcombo.transfer import ContrastiveStage, PrototypeHead
    assert all(row in quality.ALL_ROWS and ref in quality.ALL_ROWS for row, ref, _ in quality.PAIRS)
    both, one = quality.TRANSFER['contrastive+prototype'](), quality.TRANSFER['contrastive']()
    assert [type(c) for c in both] == [type(c) for c in one] + [PrototypeHead] and [type(c) for c in one] == [ContrastiveStage]
    assert vars(both[0]) == vars(one[0])   # the same contrastive stage: its defaults on both rows

def test_quality_row_length_reaches_the_data(tiny, monkeypatch):
    "`one_run('plain@32', ...)` tokenises at 32 tokens and records the row under its full name"
    sys.path.insert(0, str(ROOT/'benchmarks'))
    import quality
    from fmcombo.data import load_corpus
    seen = []
    def spy(*args, **kw):
        dls = real(*args, **kw); seen.append(dls.max_len); return dls
    real = quality.fm_dls
    monkeypatch.setattr(quality, 'fm_dls', spy)
    ds = load_corpus('bbc_news')
    rec = quality.one_run('plain@32', 'bbc_news', 2, 0, ds, quality.test_subset(ds, 20), tiny, 0)
    assert seen == [32] and rec['row'] == 'plain@32' and len(rec['correct']) == 20
    rec = quality.one_run('plain', 'bbc_news', 2, 0, ds, quality.test_subset(ds, 20), tiny, 0)
    assert seen == [32, 128] and rec['row'] == 'plain'

def test_quality_markdown_columns():
    "quality.md has the character attack's column only when texts were attacked, and lists every command"
    sys.path.insert(0, str(ROOT/'benchmarks'))
    import quality
    runs = [dict(corpus='bbc_news', n_per_class=8, row=row, seed=s, accuracy=0.5, macro_f1=0.5, ece=0.1, train_seconds=1., correct='01'*5,
                 char_attack_accuracy=0.25, attack_correct=('1' if row == 'setfit' else '0')*4) for row in ('plain', 'setfit') for s in (0, 1)]
    tab = quality.table(runs, ['plain', 'setfit'])
    info = dict(backbone='b', test_size=2000, commands=['python benchmarks/quality.py --rows plain', 'python benchmarks/quality.py --rows setfit'], runs_without_command=0)
    with_attack, without = quality.markdown(tab, {**info, 'attack_n': 200}), quality.markdown(tab, {**info, 'attack_n': 0})
    header = lambda md: next(l for l in md.splitlines() if l.startswith('| setting'))
    assert '| char attack | Δ attacked vs plain | Δ attacked vs SetFit |' in header(with_attack) and '| 25.0 ± 0.0 |' in with_attack
    assert tab[1]['attack_vs_plain']['diff'] == 1. and '| 25.0 ± 0.0 | +100.0 [+100.0, +100.0] |  |' in with_attack   # paired over the attacked texts
    assert 'char attack' not in header(without) and '25.0' not in without and 'no character attack' in without
    assert 'earlier row name' not in without
    renamed = quality.markdown(tab, {**info, 'attack_n': 0, 'renamed': [['soup-own', 'soup', 10]]})
    assert '10 runs of `soup-own` measured as `soup`.' in renamed
    for md in (with_attack, without):
        assert all(f'- `{c}`' in md for c in info['commands'])
        assert len(header(md).split('|')) == len(md.splitlines()[md.splitlines().index(header(md)) + 2].split('|'))   # every row fills every column
