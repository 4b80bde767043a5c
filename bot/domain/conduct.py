"""The rules of conduct, as a check every bot message must pass.

Debt collection in China must not threaten, insult, deceive, or claim
consequences that are not true; it must never impersonate a court, the police
or the government. The assistant's texts are written to that standard; this
module states it so that tests can check every reply the assistant gives.
The patterns are written in Simplified characters; a reply in Traditional
characters (Taiwan or Hong Kong wording too) is folded to Simplified first
(`bot.domain.script.to_simplified`), so the same words are found in it.
"""

from __future__ import annotations

import re

from bot.domain.script import to_simplified

#: Patterns a reply must never contain, each with what it would break.
FORBIDDEN: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "mentions arrest or jail",
        re.compile(r"坐牢|入狱|监狱|逮捕|拘留|判刑|抓捕|被抓|抓你|刑拘|坐监"),
    ),
    (
        "threatens",
        re.compile(
            r"后果自负|走着瞧|等着瞧|给你点颜色|小心(?:点|你)|别怪我们|有你好看|上门找你|"
            r"通知你(?:的)?(?:家人|单位|同事|亲友)|曝光你|爆(?:你)?通讯录"
        ),
    ),
    ("insults", re.compile(r"老赖|骗子|无赖|不要脸|废物|混蛋|垃圾|赖账的人|死皮赖脸")),
    (
        "claims to be a court, the police or the government",
        re.compile(
            r"(?:我们|本人|我)(?:是|代表)(?:法院|人民法院|公安|警察|警方|检察院|政府|监管部门|律师)|"
            r"本院|法院通知|公安机关通知|传票|律师函"
        ),
    ),
)


def conduct_problems(text: str) -> list[str]:
    """What `text` breaks of the rules of conduct (empty if nothing), in either script."""
    folded = to_simplified(text)
    found = []
    for what, pattern in FORBIDDEN:
        match = pattern.search(text) or pattern.search(folded)
        if match is not None:
            found.append(f"{what}: {match.group(0)!r}")
    return found
