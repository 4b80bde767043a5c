"""Someone who writes for the debtor: a spouse, a child, a friend, a lawyer.

They may hear general information, but verification, the debtor's figures and
agreements are the debtor's own (or go through the bank's authorised-agent
process at a branch). A relative who types the debtor's name must therefore
never be verified as the debtor. The patterns read the normalised (Simplified)
text; a debtor who speaks of their family ("我老婆也失业了") is not caught, only
wording that says the writer acts for someone else.
"""

from __future__ import annotations

import re

from bot.domain.normalize import normalize_text

_RELATION = (
    "老公|老婆|丈夫|妻子|爱人|太太|媳妇|先生|儿子|女儿|孩子|爸爸|妈妈|父亲|母亲|老爸|老妈"
    "|哥哥|姐姐|弟弟|妹妹|家属|家人|亲属|亲戚|朋友|同事|同学|律师|代理人|男朋友|女朋友"
    "|公公|婆婆|岳父|岳母|外甥|侄子|侄女|孙子|孙女|阿妈|阿爸|妈|爸|仔|女"
)
_ACTS_FOR = "问|办|还|协商|查|谈|申请|处理|咨询|联系|了解|说"
_PATTERNS = (
    # "我是王芳的老公", "我係佢老婆", "我是他家属"
    re.compile(rf"我(?:是|系|係)(?:[^，,。！？!?\s]{{1,6}}的|他|她|佢)的?(?:{_RELATION})"),
    # "帮我老公问一下", "替她办", "代我妈来协商"
    re.compile(rf"(?:帮|替|代)(?:我)?(?:{_RELATION}|他|她|佢)(?:来|过来)?(?:{_ACTS_FOR})"),
    # "家属可以代她办协商吗", "朋友能替他还吗"
    re.compile(
        rf"(?:{_RELATION})(?:可以|能|能不能|能否|可不可以|可唔可以)?(?:代|替|帮)(?:他|她|佢|本人)"
        rf"(?:来)?(?:{_ACTS_FOR})?"
    ),
    # "她本人住院了来不了", "他人在外地 我替他"
    re.compile(
        r"(?:他|她|佢)(?:本人)?(?:住院|在医院|来不了|去世|过世|在坐牢|联系不上).{0,12}(?:我|帮|替|代)"
    ),
)


def speaks_for_another(text: str) -> bool:
    """Whether the writer says they act for the debtor rather than being the debtor."""
    normalized = normalize_text(text or "").lower()
    return any(pattern.search(normalized) for pattern in _PATTERNS)
