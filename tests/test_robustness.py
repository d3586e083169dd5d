"Robustness: the three attacks and the report, on the tiny backbone and on a hand-made keyword classifier."
import random, re
import numpy as np, pandas as pd, pytest, torch
from fmcombo.data import fm_dls, sample_per_class
from fmcombo.learner import fm_learner
from fmcombo.ensemble import Ensemble
from fmcombo.edits import split_words, word_positions, word_prefix, KEYBOARD_NEIGHBOURS
from fmcombo.robustness import (Victim, CharAttack, WordSubstitution, EmbeddingAttack, embedding_attack, char_attack,
                                word_attack, robustness_report, word_budget, RobustnessReport)

class KeywordModel:
    "Positive exactly when the text holds the word 'excellent'"
    vocab = ['negative', 'positive']
    def __init__(self): self.calls = 0
    def predict_texts(self, texts, bs=64):
        self.calls += 1
        p = np.array([[0.1, 0.9] if 'excellent' in t.lower().split() else [0.9, 0.1] for t in texts])
        return [self.vocab[i] for i in p.argmax(1)], p

TOY = pd.DataFrame({'text': ['the food was excellent and cheap', 'an excellent quiet place to read',
                             'nice staff but slow service', 'excellent', 'awful food , awful place'],
                    'label': ['positive', 'positive', 'positive', 'positive', 'negative']})

@pytest.fixture(scope='module')
def tweets():
    from fmcombo.data import load_corpus
    return load_corpus('tweet_sentiment')

@pytest.fixture(scope='module')
def learn(tiny, tweets):
    l = fm_learner(fm_dls(sample_per_class(tweets['train'], 16, seed=0), backbone=tiny, bs=8, max_len=64, seed=0))
    with l.no_bar(), l.no_logging(): l.fit_one_cycle(4, 1e-2)
    return l

@pytest.fixture(scope='module')
def test(tweets): return tweets['test'].select(range(0, 7449, 149))

def _edit_distance_one(a, b):
    "Whether b is a with one letter substituted, dropped, inserted, or two adjacent letters swapped"
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        return len(diff) == 1 or (len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]])
    if abs(len(a) - len(b)) != 1: return False
    s, l = (a, b) if len(a) < len(b) else (b, a)
    return any(l[:i] + l[i+1:] == s for i in range(len(l)))

def test_keyword_model_flips_by_changing_the_keyword():
    for run in (char_attack(KeywordModel(), TOY, progress=False),
                word_attack(KeywordModel(), TOY, synonyms=lambda w: {'excellent': ['superb']}.get(w.lower(), []), progress=False)):
        r0, r1, r2, r3, r4 = run.records
        for r in (r0, r1, r3):
            assert r.status == 'success'
            assert [old for _, old, _ in r.changes] == ['excellent']
            assert r.pred_after == 0
        assert r2.status == 'skipped' and r2.perturbed is None and not r2.changes   # already misclassified: not attacked
        assert r4.status == 'failed'   # no single word makes "awful food" positive
        s = run.summary()
        assert s['skipped'] == 1 and s['attack success rate'] == pytest.approx(3/4)
        assert s['clean accuracy'] == pytest.approx(4/5) and s['accuracy under attack'] == pytest.approx(1/5)

def test_success_rate_is_flips_over_attacked(learn, test):
    for run in (char_attack(learn, test, max_words=0.2, progress=False), word_attack(learn, test, progress=False)):
        attacked = [r for r in run.records if r.status != 'skipped']
        flips = [r for r in attacked if r.pred_after != r.label]
        assert {r.status for r in flips} <= {'success'} and len(flips) == sum(r.status == 'success' for r in run.records)
        s = run.summary()
        assert s['attack success rate'] == pytest.approx(len(flips) / len(attacked))
        assert s['accuracy under attack'] == pytest.approx((len(attacked) - len(flips)) / len(run.records))
        assert all(r.pred != r.label for r in run.records if r.status == 'skipped')
        assert len(flips) > 0, 'the attack should flip some predictions of a weak model'

@pytest.mark.parametrize('max_words,budget', [(0.05, None), (0.1, None), (0.3, None), (1.0, 2)])
def test_never_more_than_the_word_budget(learn, test, max_words, budget):
    run = CharAttack(max_words=max_words, budget=budget).run(Victim(learn), test['text'], np.array(test['label']), progress=False)
    for r in run.records:
        if r.status == 'skipped': continue
        allowed = word_budget(r.n_words, max_words, budget)
        assert len(r.changes) <= allowed
        before, after = split_words(r.text), split_words(r.perturbed)
        assert sum(a != b for a, b in zip(before, after)) == len(r.changes) <= allowed

def test_char_attack_makes_only_typos(learn, test):
    run = char_attack(learn, test, max_words=0.3, progress=False)
    n = 0
    for r in run.records:
        if r.status == 'skipped': continue
        before, after = split_words(r.text), split_words(r.perturbed)
        assert len(before) == len(after)
        changed = {j for j, _, _ in r.changes}
        for j, (a, b) in enumerate(zip(before, after)):
            if j not in changed: assert a == b
            else:
                assert j in word_positions(before) and _edit_distance_one(a, b), (a, b); n += 1
    assert n > 0

def test_word_attack_uses_only_synonyms(learn, test):
    from fmcombo.edits import EmbeddingSynonyms
    syn = EmbeddingSynonyms(learn.dls.backbone, k=8, min_sim=0.5)
    run = word_attack(learn, test, progress=False)
    n = 0
    for r in run.records:
        if r.status == 'skipped': continue
        before, after = split_words(r.text), split_words(r.perturbed)
        changed = {j for j, _, _ in r.changes}
        for j, (a, b) in enumerate(zip(before, after)):
            if j in changed: assert b in syn(a); n += 1
            else: assert a == b
    assert n > 0

def test_attacks_are_reproducible_and_batching_changes_nothing(learn, test):
    texts, y = test['text'][:20], np.array(test['label'][:20])
    a = CharAttack(0.2).run(Victim(learn), texts, y, seed=3, progress=False)
    b = CharAttack(0.2).run(Victim(learn, bs=7), texts, y, seed=3, progress=False)
    c = CharAttack(0.2).run(Victim(learn, batched=False), texts, y, seed=3, progress=False)
    d = CharAttack(0.2).run(Victim(learn), texts, y, seed=4, progress=False)
    assert [r.perturbed for r in a.records] == [r.perturbed for r in b.records] == [r.perturbed for r in c.records]
    assert [r.queries for r in a.records] == [r.queries for r in c.records]
    assert [r.perturbed for r in a.records] != [r.perturbed for r in d.records]

def test_one_word_texts_are_attacked(learn):
    run = char_attack(KeywordModel(), TOY.iloc[[3]], progress=False)   # deleting its only word leaves nothing to query
    assert run.records[0].status == 'success' and run.records[0].queries == 1 + 4
    char_attack(learn, pd.DataFrame({'text': ['thanks', 'ok !'], 'label': ['positive', 'neutral']}), progress=False)

def test_victim_batches_its_queries():
    m = KeywordModel()
    v = Victim(m, bs=64)
    char_attack_run = CharAttack(0.5).run(v, TOY['text'].tolist(), np.array([1, 1, 1, 1, 0]), progress=False)
    assert v.queries == sum(r.queries for r in char_attack_run.records)
    # clean, leave-one-out, then one call per greedy round (a round per word at most): never one call per text
    assert m.calls <= 2 + max(r.n_words for r in char_attack_run.records) and v.queries >= 3 * m.calls

def test_embedding_attack_at_zero_is_clean_accuracy(learn, test):
    clean = float((learn.predict_texts(test['text'])[1].argmax(1) == np.array(test['label'])).mean())
    params = {k: v.clone() for k, v in learn.model.state_dict().items()}
    grads = [None if p.grad is None else p.grad.clone() for p in learn.model.parameters()]
    learn.model.train()
    res = embedding_attack(learn, test, eps=[0, 0.05, 1.0], steps=5, progress=False)
    assert res.table.loc[0., 'accuracy'] == pytest.approx(clean)
    assert res.table.loc[1.0, 'accuracy'] < clean
    assert list(res.table['accuracy']) == sorted(res.table['accuracy'], reverse=True)
    assert learn.model.training   # the mode is restored
    for k, v in learn.model.state_dict().items(): assert torch.equal(v, params[k])
    emb = learn.model.get_input_embeddings()
    assert not emb._forward_hooks and not learn.model._forward_pre_hooks
    for p, g in zip(learn.model.parameters(), grads):   # the attack takes gradients of delta only
        assert (p.grad is None and g is None) or torch.equal(p.grad, g)

def test_embedding_attack_leaves_no_hook_on_error(learn, test):
    emb = learn.model.get_input_embeddings()
    h = emb.register_forward_hook(lambda *a: (_ for _ in ()).throw(RuntimeError('boom')))
    try:
        with pytest.raises(RuntimeError, match='boom'): embedding_attack(learn, test, eps=[1.0], steps=2, progress=False)
    finally: h.remove()
    assert not emb._forward_hooks and not learn.model._forward_pre_hooks

def test_report_on_learner_folder_and_ensemble(learn, test, tiny, tweets, tmp_path):
    rep = robustness_report(learn, test, n=15, progress=False)
    assert isinstance(rep, RobustnessReport) and isinstance(rep, pd.DataFrame)
    assert list(rep.index) == ['embedding (ε=0.1)', 'char', 'word']
    assert list(rep.columns) == ['clean accuracy', 'accuracy under attack', 'attack success rate', 'words changed',
                                 'queries per example', 'skipped', 'n']
    assert (rep['accuracy under attack'] <= rep['clean accuracy']).all() and (rep['n'] == 15).all()
    assert len(rep.show_examples('char', k=3, status=None)) == 3
    assert '<mark>' in rep.show_examples('char', status='success')._repr_html_() or not len(rep.show_examples('char'))
    learn.save_fm(tmp_path/'m')
    saved = robustness_report(tmp_path/'m', test, attacks=['char', 'embedding'], n=15, progress=False)
    assert saved.loc['char', 'accuracy under attack'] == rep.loc['char', 'accuracy under attack']
    assert saved.loc['embedding (ε=0.1)', 'accuracy under attack'] == rep.loc['embedding (ε=0.1)', 'accuracy under attack']
    other = fm_learner(fm_dls(sample_per_class(tweets['train'], 16, seed=1), backbone=tiny, bs=8, max_len=64, seed=1))
    ens = robustness_report(Ensemble([learn, other]), test, n=15, progress=False)
    assert list(ens.index) == list(rep.index)

def test_embedding_attack_refuses_members_with_different_tokenizers(learn, test, tiny, tweets):
    from fmcombo.testing import tiny_backbone
    other_tok = tiny_backbone(vocab_size=800)
    other = fm_learner(fm_dls(sample_per_class(tweets['train'], 4, seed=1), backbone=other_tok, bs=8, max_len=64, seed=1))
    with pytest.raises(ValueError, match='share a tokenizer'): embedding_attack(Ensemble([learn, other]), test, eps=[1.], progress=False)

def test_bad_input(learn, test):
    with pytest.raises(ValueError, match='n=1000 is larger than ds, which holds 50 texts'): robustness_report(learn, test, n=1000)
    with pytest.raises(ValueError, match=r"unknown attack 'typo'.*embedding"): robustness_report(learn, test, attacks=['typo'])
    for mw in (0, -0.1, 1.5, True):
        with pytest.raises(ValueError, match=r'max_words .* in \(0, 1\]'): char_attack(learn, test, max_words=mw)
        with pytest.raises(ValueError, match=r'max_words .* in \(0, 1\]'): word_attack(learn, test, max_words=mw)
    with pytest.raises(ValueError, match='empty'): robustness_report(learn, test.select([]))
    with pytest.raises(ValueError, match='empty'): char_attack(learn, test.select([]))
    with pytest.raises(ValueError, match='radii >= 0'): EmbeddingAttack(eps=-1.)
    with pytest.raises(ValueError, match='steps must be an integer >= 1'): EmbeddingAttack(steps=0)
    with pytest.raises(ValueError, match='budget'): CharAttack(budget=0)
    with pytest.raises(TypeError, match='needs gradients'): embedding_attack(KeywordModel(), TOY)
    with pytest.raises(TypeError, match='must be an FMLearner'): Victim(object())
    with pytest.raises(ValueError, match=r"labels \['great'\] are not in the vocabulary \['negative', 'neutral', 'positive'\]"):
        char_attack(learn, pd.DataFrame({'text': ['so good'], 'label': ['great']}))

# --- discrete adversarial training (A2T) ---

from fmcombo.adversarial import FGM
from fmcombo.robustness import A2T, training_attack

def _a2t_learner(tiny, tweets, *cbs, seed=0):
    return fm_learner(fm_dls(sample_per_class(tweets['train'], 8, seed=seed), backbone=tiny, bs=8, max_len=48, seed=seed), cbs=list(cbs))

def _fit(l, epochs=1):
    with l.no_bar(), l.no_logging(): l.fit_one_cycle(epochs, 1e-2)
    return l

def _changed(old, new):
    o, n = split_words(old), split_words(new)
    assert len(o) == len(n)
    return [(a, b) for a, b in zip(o, n) if a != b]

def test_a2t_trains_on_typos_of_the_batch_within_budget(tiny, tweets):
    cb = A2T(share=0.5, budget=2, start_epoch=0, max_queries=200, seed=0)
    l = _fit(_a2t_learner(tiny, tweets, cb))
    assert np.isfinite(l.recorder.losses[-1].item())
    fed = [pair for h in cb.history for pair in h['texts'].values()]
    assert fed and len(cb.history) == len(l.dls.train)
    for old, new in fed:
        ch = _changed(old, new)
        assert 1 <= len(ch) <= 2 and all(_edit_distance_one(a.lower(), b.lower()) for a, b in ch)
    assert all(h['queries'] <= 200 for h in cb.history)

def test_a2t_word_attack_substitutes_words(tiny, tweets):
    cb = A2T('word', share=1., budget=1, start_epoch=0, max_queries=400, seed=0)
    _fit(_a2t_learner(tiny, tweets, cb))
    fed = [pair for h in cb.history for pair in h['texts'].values()]
    assert fed and all(len(_changed(o, n)) == 1 for o, n in fed)

def test_a2t_attacks_the_keyword_of_a_keyword_model():
    texts = ['the food was excellent and cheap', 'an excellent quiet place to read', 'nice staff but slow service']
    new = A2T(share=1., budget=1, seed=0).adversarial_texts(Victim(KeywordModel()), texts, np.array([1, 1, 1]))
    assert sorted(new) == [0, 1]   # the misclassified text is not attacked
    for i, t in new.items():
        (old, typo), = _changed(texts[i], t)
        assert old == 'excellent' and _edit_distance_one(old, typo)
    syn = WordSubstitution(synonyms=lambda w: {'excellent': ['superb']}.get(w, []), budget=1, tries=2)
    assert A2T(syn, share=1., seed=0).adversarial_texts(Victim(KeywordModel()), texts[:1], np.array([1])) == {0: 'the food was superb and cheap'}

def test_a2t_attacks_only_the_lead_of_each_text_with_words(tiny, tweets):
    "words=k: the edits fall in each text's first k words, the rest is fed verbatim, and the query bound counts the lead's words alone"
    cb = A2T(share=0.5, budget=1, start_epoch=0, max_queries=4 * (1 + 4 + 2*4), seed=0, words=4)   # four 4-word leads' worth of queries
    _fit(_a2t_learner(tiny, tweets, cb))
    fed = [pair for h in cb.history for pair in h['texts'].values()]
    assert fed and all(h['queries'] <= cb.max_queries for h in cb.history)
    for old, new in fed:
        o, n = split_words(old), split_words(new)
        (i,) = [i for i, (a, b) in enumerate(zip(o, n)) if a != b]   # one word changed (budget 1) ...
        assert i in word_positions(o)[:4]                             # ... among the first four
        assert new.endswith(old[len(word_prefix(old, 4)):])           # the rest, verbatim
    assert any(len(old.split()) > 4 for old, _ in fed), 'some fed text is longer than its lead'
    whole = A2T(share=0.5, budget=1, start_epoch=0, max_queries=1 + 4 + 2*4, seed=0)   # one lead's bound without words: no tweet fits
    with pytest.warns(UserWarning, match='attack each text.s lead'): _fit(_a2t_learner(tiny, tweets, whole))

def test_a2t_is_idle_before_start_epoch_in_validation_lr_find_and_get_preds(tiny, tweets):
    cb = A2T(start_epoch=1, share=1., seed=0)
    l = _fit(_a2t_learner(tiny, tweets, cb), epochs=2)
    assert {h['epoch'] for h in cb.history} == {1} and len(cb.history) == len(l.dls.train)
    n = len(cb.history)
    l.get_preds(); l.validate(); l.predict_texts(['good day', 'bad day'])
    assert len(cb.history) == n
    cb0 = A2T(start_epoch=0, share=1., seed=0)
    l0 = _a2t_learner(tiny, tweets, cb0)
    with l0.no_bar(), l0.no_logging(): l0.lr_find(num_it=4, show_plot=False)
    assert cb0.history == []

def test_a2t_same_seed_same_texts(tiny, tweets):
    runs = [A2T(share=0.5, start_epoch=0, seed=s) for s in (0, 0, 1)]
    for cb in runs: _fit(_a2t_learner(tiny, tweets, cb))
    texts = [[h['texts'] for h in cb.history] for cb in runs]
    assert texts[0] == texts[1] and texts[0] != texts[2]

def test_a2t_without_queries_left_trains_as_plain(tiny, tweets):
    "A step bound too small for any text attacks nothing, and draws nothing from torch: the weights are plain training's"
    cb = A2T(share=1., start_epoch=0, max_queries=1, seed=0)
    with pytest.warns(UserWarning, match=r'A2T attacked no text in this fit: a text of \d+ words costs up to \d+ queries.*max_queries=1'):
        a = _fit(_a2t_learner(tiny, tweets, cb))
    b = _fit(_a2t_learner(tiny, tweets))
    assert all(h['texts'] == {} and h['queries'] == 0 for h in cb.history)
    for p, q in zip(a.model.parameters(), b.model.parameters()): assert torch.equal(p, q)

def test_a2t_with_fgm_trains(tiny, tweets):
    cb = A2T(share=0.5, start_epoch=0, seed=0)
    l = _fit(_a2t_learner(tiny, tweets, cb, FGM()))
    assert np.isfinite(l.recorder.losses[-1].item()) and cb.history

@pytest.mark.parametrize('kw, msg', [(dict(share=1.5), 'share is the share'), (dict(share=-0.1), 'in [0, 1]'),
                                     (dict(budget=0), 'budget is the most words'), (dict(budget=1.5), 'integer >= 1'),
                                     (dict(attack='typo'), "unknown attack 'typo'"), (dict(max_queries=0), 'max_queries'),
                                     (dict(start_epoch=-1), 'start_epoch'), (dict(words=0), 'leading words'), (dict(words=2.5), 'got 2.5')])
def test_a2t_bad_arguments(kw, msg):
    with pytest.raises(ValueError, match=re.escape(msg)): A2T(**kw)
    with pytest.raises(TypeError, match='attack must be'): training_attack(3)

# --- typos where the model looks (TargetedTypos) and the word-recognition front end (TypoCorrector) ---

from fmcombo.robustness import TargetedTypos, TypoCorrector, Corrected, tokenizer_words

def test_targeted_typos_edit_the_top_ranked_words_without_search():
    texts = ['the food was excellent and cheap', 'an excellent quiet place to read', 'nice staff but slow service']
    v = Victim(KeywordModel())
    run = TargetedTypos(max_words=1., budget=1).run(v, texts, np.array([1, 1, 1]), seed=0)
    for r in run.records[:2]:
        (old, typo), = _changed(r.text, r.perturbed)
        assert old == 'excellent' and _edit_distance_one(old, typo)
    assert run.records[2].status == 'skipped' and run.records[2].changes == []   # misclassified: left alone, as the attacks leave it
    assert v.queries == 3 + sum(len(t.split()) for t in texts[:2])   # the clean query and the ranking, no candidates

def test_a2t_typos_trains_within_budget_and_query_bound(tiny, tweets):
    cb = A2T('typos', share=0.5, budget=2, start_epoch=0, max_queries=200, seed=0)
    l = _fit(_a2t_learner(tiny, tweets, cb, FGM()))
    assert np.isfinite(l.recorder.losses[-1].item())
    fed = [pair for h in cb.history for pair in h['texts'].values()]
    assert fed and all(1 <= len(_changed(o, n)) <= 2 for o, n in fed)
    assert all(h['queries'] <= 200 for h in cb.history)

def test_typo_corrector_restores_each_kind_of_typo():
    corr = TypoCorrector(['the food was excellent and the place quiet'] * 2)
    rng = random.Random(0)
    from fmcombo.edits import char_edit
    for kind in ('substitute', 'swap', 'delete', 'insert'):
        typo = char_edit('excellent', rng, (kind,))
        assert typo != 'excellent' and corr(f'the food was {typo}') == 'the food was excellent', (kind, typo)
    assert corr('The QIUET place , 12 tims') == 'The QUIET place , 12 tims'   # casing kept; nothing known near "tims"

def test_corrected_defends_the_keyword_model_and_keeps_the_embedding_attack(learn, tiny, test):
    texts = TOY.iloc[:3]
    corr = TypoCorrector(['excellent food'] * 2)
    assert [r.status for r in char_attack(Corrected(KeywordModel(), corr), texts, progress=False).records] == ['failed', 'failed', 'skipped']
    guarded = Corrected(learn, TypoCorrector(list(test['text']), tokenizer_words(tiny)))
    assert guarded.vocab == list(learn.dls.vocab)
    rep = robustness_report(guarded, test, attacks=['embedding', 'char'], n=8, seed=0, progress=False)
    bare = robustness_report(learn, test, attacks=['embedding'], n=8, seed=0, progress=False)
    # the front end does not act in embedding space: the embedding attack sees the bare model
    assert rep.runs['embedding'].table.equals(bare.runs['embedding'].table)
    assert len(rep.runs['char'].records) == 8
