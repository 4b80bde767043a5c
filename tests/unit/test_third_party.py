"""Writers who act for the debtor are told apart from debtors who speak of their family."""

from __future__ import annotations

import pytest

from bot.domain.third_party import speaks_for_another


@pytest.mark.parametrize(
    "text",
    [
        "我是王芳的老公，她住院了",
        "我是她老婆 替她来问问",
        "帮我老公问一下他的信用卡",
        "家属可以代她办协商吗",
        "我替我妈来协商还款",
        "我係佢老婆，想幫佢問下",
        "我是他女儿 他人在医院",
        "朋友能替他还吗",
        "她本人住院了来不了 我帮她问",
        "我是債務人的兒子",
    ],
)
def test_acting_for_another(text: str) -> None:
    assert speaks_for_another(text)


@pytest.mark.parametrize(
    "text",
    [
        "我是王芳",
        "我是王芳本人",
        "我老婆也失业了 家里就靠我",
        "孩子要上学 每个月开销很大",
        "我想协商还款",
        "催收打电话给我家人了",
        "我妈住院了 我现在还不上",
        "我是本人，身份证尾号4321",
        "我是张先生",
        "我是女的 一个人带孩子",
        "我是做生意的 生意亏了",
        "",
    ],
)
def test_a_debtor_speaking_of_family(text: str) -> None:
    assert not speaks_for_another(text)
