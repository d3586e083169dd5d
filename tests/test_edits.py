"Word and character edits: lossless splitting, edits that keep punctuation and spacing, typos, synonyms."
import random, string
import pytest
from fmcombo.edits import (split_words, join_words, is_word, word_positions, delete_word, insert_word, swap_words,
                           replace_word, match_case, KEYBOARD_NEIGHBOURS, char_edit, keyboard_substitute, char_swap,
                           char_delete, keyboard_insert, EmbeddingSynonyms, WordNetSynonyms)

def test_round_trip_on_real_and_random_text(bbc):
    for t in bbc['train'].select(range(50))['text']: assert join_words(split_words(t)) == t
    rng = random.Random(0)
    alphabet = string.ascii_letters + string.digits + string.punctuation + ' \n\t' + 'éü東—…’'
    for _ in range(300):
        t = ''.join(rng.choice(alphabet) for _ in range(rng.randint(0, 60)))
        assert join_words(split_words(t)) == t

def test_pieces_are_words_spaces_or_punctuation():
    p = split_words("It's a state-of-the-art model,  isn't it?\n")
    assert [p[i] for i in word_positions(p)] == ["It's", 'a', 'state-of-the-art', 'model', "isn't", 'it']
    assert all(is_word(x) or x.isspace() or not any(c.isalnum() for c in x) for x in p)

def test_edits_keep_punctuation_and_spacing():
    p = split_words("Well, the cat sat.\n\nThe end!")
    words = word_positions(p)
    assert join_words(delete_word(p, words[2])) == "Well, the sat.\n\nThe end!"
    assert join_words(delete_word(p, words[3])) == "Well, the cat.\n\nThe end!"
    assert join_words(swap_words(p, words[0], words[5])) == "end, the cat sat.\n\nThe Well!"   # words move as they are
    assert join_words(replace_word(p, words[4], 'a')) == "Well, the cat sat.\n\nA end!"
    assert join_words(insert_word(p, words[2], 'black', before=True)) == "Well, the black cat sat.\n\nThe end!"
    assert join_words(p) == "Well, the cat sat.\n\nThe end!"
    with pytest.raises(IndexError, match='not the index of a word'): delete_word(p, 1)
    with pytest.raises(IndexError, match='not the index of a word'): swap_words(p, 0, 99)

def test_delete_every_word_leaves_no_double_spaces():
    p = split_words("a b c d e")
    while word_positions(p): p = delete_word(p, word_positions(p)[0])
    assert join_words(p) == ''

def test_match_case():
    assert match_case('movie', 'Film') == 'Movie' and match_case('movie', 'FILM') == 'MOVIE' and match_case('movie', 'film') == 'movie'

def test_keyboard_edits_use_neighbouring_keys():
    assert set(KEYBOARD_NEIGHBOURS['g']) == set('fhtybv')
    rng = random.Random(1)
    for _ in range(300):
        w = keyboard_substitute('typing', rng)
        diff = [i for i in range(6) if w[i] != 'typing'[i]]
        assert len(diff) == 1 and w[diff[0]] in KEYBOARD_NEIGHBOURS['typing'[diff[0]]]
        w = keyboard_insert('typing', rng)
        assert any(w[:k] + w[k+1:] == 'typing' and w[k] in KEYBOARD_NEIGHBOURS[w[k-1]] for k in range(1, 7))
        assert sorted(char_swap('typing', rng)) == sorted('typing') and char_swap('typing', rng) != 'typing'
        assert len(char_delete('typing', rng)) == 5
    assert char_edit('...', rng) == '...'
    with pytest.raises(ValueError, match='kinds must be'): char_edit('a', rng, kinds=())

def test_embedding_synonyms_are_whole_words(tiny):
    syn = EmbeddingSynonyms(tiny, k=4, min_sim=-1)
    assert syn.words and all(w.isalpha() and len(w) > 1 for w in syn.words)
    assert not any(w in syn.words for w in ['the', 'and', 'of'])             # stop words excluded
    for w in ['market', 'film', 'government']:
        if w in syn.words:
            s = syn(w)
            assert 0 < len(s) <= 4 and all(x in syn.words and x != w for x in s)
    assert syn('zzzzqqq') == [] and syn('') == []
    with pytest.raises(ValueError, match='min_sim'): EmbeddingSynonyms(tiny, min_sim=2)
    with pytest.raises(TypeError, match='word must be a string'): syn(3)

def test_wordnet_says_how_to_get_it():
    try: WordNetSynonyms()
    except ImportError as e: assert 'pip install nltk' in str(e)
