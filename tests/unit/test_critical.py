"""The critical-message rules of the bundled policy: true and false positives by class."""

from __future__ import annotations

import copy

import pytest
import yaml

from bot.domain.critical import CriticalMessages
from bot.domain.policy import DEFAULT_POLICY_PATH, PolicyError, load_policy, parse_policy


@pytest.fixture(scope="module")
def rules() -> CriticalMessages:
    return load_policy().critical_messages.compiled()


def intent_of(rules: CriticalMessages, text: str) -> str | None:
    verdict = rules.verdict(text)
    return None if verdict is None else verdict.intent


@pytest.mark.parametrize(
    "text",
    [
        "我现在就在楼顶",
        "我現在就在樓頂",
        "人已经站在江边了",
        "药我都准备好了",
        "安眠药买好了 今晚就吃",
        "我现在就去跳楼",
        "遗书都写好了",
        "我而家喺天台",
        "这是最后一条消息了 再见",
    ],
)
def test_imminent_danger_names_a_place_a_means_or_now(rules: CriticalMessages, text: str) -> None:
    assert rules.is_imminent_danger(text)
    assert intent_of(rules, text) == "express_distress"


@pytest.mark.parametrize(
    "text",
    [
        "不想活了",
        "活着真没意思",
        "我真的撑不下去了",
        "欠了这么多 不如死了算了",
        "我走了家里人就不用替我还了吧",
        "我唔想再活落去",
        "人生沒希望了",
    ],
)
def test_distress_without_danger_now(rules: CriticalMessages, text: str) -> None:
    assert intent_of(rules, text) == "express_distress"
    assert not rules.is_imminent_danger(text)


@pytest.mark.parametrize(
    "text",
    [
        "笑死我了",
        "烦死了天天加班",
        "我住在楼顶那一层，信号不好",
        "信用卡逾期会坐牢吗",
        "催收会打电话给家人吗",
        "催收可以上门吗",
        "怎么投诉你们",
        "罚息是怎么算的",
        "你是机器人吗",
        "你係咪真人嚟㗎",
        "切 懒得跟你说",
        "我跟家里商量一下明天再来",
        "最低还款是多少",
        "有哪些方案 直接说吧",
    ],
)
def test_questions_figures_of_speech_and_other_intents_are_left_alone(
    rules: CriticalMessages, text: str
) -> None:
    assert intent_of(rules, text) is None


@pytest.mark.parametrize(
    "text",
    [
        "催收说不还就让我坐牢",
        "你们的人天天打电话给我爸妈",
        "一天打二十个电话 还让不让人活",
        "有人冒充法院给我打电话",
        "你們把我的資料洩露了",
        "催收打到我单位去了 领导都知道了",
        "说要上门找我家人",
        "我要投诉你们的催收员",
        "昨天催收说会上门",
        "我的身份证号和欠款被发到我同事群里了",
        "他们把我欠钱的事挂到朋友圈了",
    ],
)
def test_complaints_about_conduct(rules: CriticalMessages, text: str) -> None:
    assert intent_of(rules, text) == "complain"


@pytest.mark.parametrize(
    "text",
    [
        "这笔钱我早就还了",
        "金额不对 我没欠这么多",
        "這筆不是我刷的",
        "我的卡被盗刷了",
        "上个月就还清了怎么还显示逾期",
    ],
)
def test_disputes(rules: CriticalMessages, text: str) -> None:
    assert intent_of(rules, text) == "dispute_debt"


@pytest.mark.parametrize(
    "text",
    [
        "转人工",
        "不想和机器说话",
        "找你们协商部门的人谈",
        "有没有真人",
        "唔该帮我转人工",
        "我要找真人",
    ],
)
def test_requests_for_a_person(rules: CriticalMessages, text: str) -> None:
    assert intent_of(rules, text) == "request_human"


@pytest.mark.parametrize(
    "text",
    ["我真的还不上了", "还不起", "卡債繳不出來", "这个月实在没钱还", "我没有能力偿还", "钱凑不齐"],
)
def test_inability_to_pay_is_hardship(rules: CriticalMessages, text: str) -> None:
    assert intent_of(rules, text) == "state_hardship"


@pytest.mark.parametrize("text", ["我真的还不上了", "还不起了 你们看着办吧", "繳不出來"])
def test_inability_is_never_a_refusal(rules: CriticalMessages, text: str) -> None:
    verdict = rules.correct("refuse_payment", text)
    assert verdict is not None and verdict.intent == "state_hardship"


def test_an_explicit_refusal_stays_a_refusal(rules: CriticalMessages) -> None:
    assert rules.correct("refuse_payment", "我就是不想还，你们爱咋咋地") is None
    assert rules.correct("refuse_payment", "不是还不起，是不想还") is None


def test_inability_keeps_an_faq_or_an_answer_in_the_form(rules: CriticalMessages) -> None:
    assert rules.correct("faq", "这个月还不上了怎么办") is None
    assert rules.correct("inform", "失业了还不上") is None


@pytest.mark.parametrize(
    "question",
    ["这个月还不上了怎么办", "还不起会坐牢吗？", "实在还不上可以不可以分期", "繳不出來會怎樣"],
)
def test_inability_asked_as_a_question_keeps_its_faq(
    rules: CriticalMessages, question: str
) -> None:
    assert rules.correct("faq", question) is None


@pytest.mark.parametrize(
    "statement",
    [
        "查出来是癌症 后面要一直化疗 这卡是真的没法还了",
        "老婆住院了 真的还不起了",
        "工厂倒闭了 卡債繳不出來",
        "钱凑不齐 这个月实在没钱还",
    ],
)
def test_inability_stated_not_asked_is_hardship_even_over_an_faq(
    rules: CriticalMessages, statement: str
) -> None:
    verdict = rules.correct("faq", statement)
    assert verdict is not None and verdict.intent == "state_hardship"


def test_a_more_urgent_prediction_is_kept(rules: CriticalMessages) -> None:
    assert rules.correct("express_distress", "催收天天打电话给我爸妈 我不想活了") is None
    text = "催收天天打电话给我爸妈"
    assert rules.correct("request_human", text) is not None
    assert rules.correct("faq", text).intent == "complain"  # type: ignore[union-attr]


def test_distress_overrides_any_prediction(rules: CriticalMessages) -> None:
    verdict = rules.correct("ask_account_status", "我现在就在楼顶")
    assert verdict is not None and verdict.intent == "express_distress"
    assert verdict.imminent_danger


def _policy_data() -> dict:
    return yaml.safe_load(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))


def test_a_pattern_that_is_not_a_regex_stops_the_policy() -> None:
    data = copy.deepcopy(_policy_data())
    data["critical_messages"]["complain"]["match"].append("(投诉")
    with pytest.raises(PolicyError, match=r"critical_messages.complain.match.*\(投诉"):
        parse_policy(data)


def test_a_rule_without_patterns_stops_the_policy() -> None:
    data = copy.deepcopy(_policy_data())
    data["critical_messages"]["request_human"]["match"] = []
    with pytest.raises(PolicyError, match="critical_messages.request_human.match"):
        parse_policy(data)


def test_every_rule_is_required() -> None:
    data = copy.deepcopy(_policy_data())
    del data["critical_messages"]["imminent_danger"]
    with pytest.raises(PolicyError, match="critical_messages.imminent_danger"):
        parse_policy(data)


@pytest.mark.parametrize(
    "text",
    [
        "我刚划开了手腕",
        "吞下了半瓶安眠药",
        "我已经喝了农药",
        "我现在浑身是伤 流了好多血",
        "炭已经点着了",
    ],
)
def test_harm_already_done_is_imminent_danger(rules: CriticalMessages, text: str) -> None:
    assert rules.is_imminent_danger(text)


@pytest.mark.parametrize("text", ["昨晚喝了一瓶啤酒", "我老公出车祸流了很多血", "我吃了感冒药"])
def test_harm_to_others_or_none_is_not_imminent_danger(rules: CriticalMessages, text: str) -> None:
    assert not rules.is_imminent_danger(text)


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        # Debts called crimes, threats of shame, third parties, rude or absent service.
        ("催收说我是恶意透支 要判刑", "complain"),
        ("他们打电话跟我说我涉嫌诈骗", "complain"),
        ("说不还就让我身败名裂", "complain"),
        ("我们村委会都接到催收电话了", "complain"),
        ("客服一直踢皮球", "complain"),
        ("你们职员说话阴阳怪气的", "complain"),
        ("我要去人民银行反映你们", "complain"),
        # Figures that do not agree, charges taken twice, a wrong record.
        ("app上的欠款和你们说的对不上", "dispute_debt"),
        ("年费多扣了一次", "dispute_debt"),
        ("我的征信记录有误", "dispute_debt"),
        # A negotiator asked for by name of the role.
        ("麻烦让协商员给我回个电话", "request_human"),
        ("帮我转协商人员", "request_human"),
        ("我没有还款能力了", "state_hardship"),
    ],
)
def test_more_ways_of_saying_the_critical_classes(
    rules: CriticalMessages, text: str, intent: str
) -> None:
    assert intent_of(rules, text) == intent


@pytest.mark.parametrize(
    "text",
    [
        "我就是不还",
        "老子就不还",
        "一分钱都不会还",
        "休想让我还钱",
        "不还你们又能拿我怎么样",
        "我故意不还的",
    ],
)
def test_an_explicit_will_not_is_a_refusal(rules: CriticalMessages, text: str) -> None:
    verdict = rules.correct("faq", text)
    assert verdict is not None and verdict.intent == "refuse_payment"


@pytest.mark.parametrize(
    "text",
    [
        "我不是不还 是真的没钱",  # inability: never a refusal
        "就是还不上了",
        "我没说不还啊",
        "如果一直不还会怎么样",  # a question about the consequences
        "我朋友就是不还 后来怎么样了",  # someone else's refusal
        "那我就不给你们打电话了",  # not about paying
        "催收会不会打给村委会",  # a question about what collectors may do
        "手续费是怎么算的",
        "你是真人吗",
    ],
)
def test_not_a_refusal_nor_another_class(rules: CriticalMessages, text: str) -> None:
    assert intent_of(rules, text) in (None, "state_hardship")
    assert intent_of(rules, text) != "refuse_payment"


def test_a_refusal_never_replaces_a_hardship_the_classifier_saw(rules: CriticalMessages) -> None:
    assert rules.correct("state_hardship", "反正就不还了 失业了") is None


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("欠了这么多 死了就一笔勾销了吧", "express_distress"),
        ("我就是家里的拖累", "express_distress"),
        ("没有我 他们会过得更轻松", "express_distress"),
        ("我妈在住院 你们还天天打电话骚扰她", "complain"),
        ("麻烦转一下客服", "request_human"),
    ],
)
def test_distress_harassed_relatives_and_a_person_in_other_words(
    rules: CriticalMessages, text: str, intent: str
) -> None:
    assert intent_of(rules, text) == intent


@pytest.mark.parametrize(
    "text",
    [
        "催收打电话时可以骂人吗",  # what collectors may do: an FAQ
        "催收能不能假装是律师",
        "想投诉的话找哪个电话",
        "投诉需要准备哪些证据",
        "我已经还了三期了",  # progress on a plan, not a dispute
        "我已经还了一部分",
        "结清以后征信上的记录多久能消掉",
    ],
)
def test_questions_and_progress_are_not_complaints_or_disputes(
    rules: CriticalMessages, text: str
) -> None:
    assert intent_of(rules, text) not in ("complain", "dispute_debt")


@pytest.mark.parametrize("predicted", ["ask_account_status", "deny", "ask_repayment_plan"])
def test_inability_stated_replaces_a_question_intent_that_asks_nothing(
    rules: CriticalMessages, predicted: str
) -> None:
    verdict = rules.correct(predicted, "我现在真的没有还款能力了")
    assert verdict is not None and verdict.intent == "state_hardship"
    assert rules.correct(predicted, "没有还款能力的话 账户会怎么样") is None
    assert rules.correct("inform", "我现在真的没有还款能力了") is None


@pytest.mark.parametrize(
    "text",
    ["我刚吃了一整板药 头好晕", "吞了半瓶安眠药", "药片吃了一大把", "刚刚吃下一堆止痛药"],
)
def test_medication_taken_in_any_measure_is_imminent_danger(
    rules: CriticalMessages, text: str
) -> None:
    assert rules.is_imminent_danger(text)


@pytest.mark.parametrize("text", ["已经到绝路了", "真的无路可走了", "我这辈子走到头了"])
def test_a_dead_end_is_distress(rules: CriticalMessages, text: str) -> None:
    assert intent_of(rules, text) == "express_distress"


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("我跟你讲清楚啊这个钱我是不会还的", "refuse_payment"),
        ("还什么还", "refuse_payment"),
        ("利息这么高 不还了", "refuse_payment"),
        ("哪还有钱还信用卡 房租都交不起", "state_hardship"),
        ("工资砍了一半 还款根本不够", "state_hardship"),
        ("你们说我欠五万 我算了只有三万二", "dispute_debt"),
        ("app上显示欠八千 其实我只借了五千", "dispute_debt"),
    ],
)
def test_refusals_inabilities_and_disputes_in_their_other_forms(
    rules: CriticalMessages, text: str, intent: str
) -> None:
    assert intent_of(rules, text) == intent


@pytest.mark.parametrize(
    "text",
    [
        "这个月先不还 下个月一起还",
        "暂时不还 等发工资",
        "可以不还吗",
        "不还会怎么样",
        "我不会还不上的 放心",
        "我已经还了五千 还剩多少",
        "你们说我欠五万 对吗",
        "还款不够的话怎么办",
    ],
)
def test_putting_off_asking_and_progress_are_no_critical_class(
    rules: CriticalMessages, text: str
) -> None:
    assert intent_of(rules, text) is None
