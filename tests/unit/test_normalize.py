from hypothesis import given
from hypothesis import strategies as st

from bot.domain.normalize import normalize_text


def test_traditional_becomes_simplified() -> None:
    assert normalize_text("我想申請停息掛賬") == "我想申请停息挂账"
    assert normalize_text("催收部門和協商部門有什麼區別") == "催收部门和协商部门有什么区别"


def test_full_width_digits_and_letters_become_half_width() -> None:
    assert normalize_text("欠款１５００元，ＯＫ") == "欠款1500元,OK"


def test_zero_width_characters_become_spaces() -> None:
    assert normalize_text("逾\u200b期") == "逾 期"


def test_simplified_text_is_unchanged() -> None:
    text = "逾期会影响征信吗？我想申请个性化分期。"
    assert normalize_text(text.replace("？", "?").replace("。", "。")) == text.replace("？", "?")


def test_empty_text() -> None:
    assert normalize_text("") == ""


@given(st.text(max_size=200))
def test_length_is_always_preserved(text: str) -> None:
    assert len(normalize_text(text)) == len(text)
