"""Chinese labels of the codes the console shows, and small display helpers."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from bot.domain.clock import BEIJING

REASONS = {
    "distress": "情绪危机",
    "request_human": "要求人工服务",
    "repeated_fallback": "多次未能理解",
    "dispute": "对欠款有异议",
    "complaint": "投诉",
    "beyond_authority": "超出助手权限",
    "offers_declined": "拒绝了全部方案",
    "verification_failed": "身份核实失败",
}
OUTCOMES = {
    "plan_agreed": "已达成还款方案",
    "promise_to_pay": "承诺还款",
    "referred_to_collections": "转交催收部门",
    "dispute_logged": "已登记异议",
    "no_contact": "未能联系上",
    "other": "其他",
}
STATUSES = {"waiting": "等待中", "claimed": "处理中", "closed": "已结束"}
ROLES = {"negotiator": "协商专员", "supervisor": "主管"}
COMPLAINT_CATEGORIES = {
    "collection_conduct": "催收行为",
    "fees": "费用",
    "privacy": "隐私",
    "service": "服务",
    "other": "其他",
}
CHANNELS = {"rest": "网页", "socketio": "网页聊天", "wechat": "微信"}
REFERRAL_REASONS = {
    "refused_payment": "拒绝还款",
    "declined_negotiator": "拒绝人工协商",
    "staff_referral": "专员转交催收",
}
REFERRAL_STATUSES = {"queued": "待接收", "acknowledged": "已接收"}
SPEAKERS = {"debtor": "债务人", "assistant": "智能助手", "staff": "工作人员"}

#: Labels of the case summary's keys that are known; others are shown as they are.
#: The keys of a case summary (`actions/escalation.py: case_summary`), in the
#: order a negotiator reads them.
SUMMARY_KEYS = {
    "verified": "身份已核实",
    "debtor_words": "债务人原话",
    "accounts": "账户",
    "agreement": "已有协议",
    "circumstances": "财务状况",
    "offers_shown": "已展示的方案",
    "negotiation_stage": "协商阶段",
    "offer_chosen": "债务人选择的方案",
    "proposal": "提交专员的协商申请",
    "recent_messages": "债务人最近的消息",
}


def label(table: dict[str, str], code: str | None) -> str:
    """The Chinese label of `code`, or the code itself if unknown; "—" for None."""
    if code is None:
        return "—"
    return table.get(code, code)


def optional_label(table: dict[str, str], code: str | None) -> str | None:
    """The Chinese label of `code`, or None for None."""
    return None if code is None else table.get(code, code)


def summary_items(summary: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(label, text, preformatted) for each top-level key; known keys first."""
    known = [key for key in SUMMARY_KEYS if key in summary]
    rest = sorted(key for key in summary if key not in SUMMARY_KEYS)
    items = []
    for key in known + rest:
        value = summary[key]
        name = SUMMARY_KEYS.get(key, key)
        if key == "recent_messages" and isinstance(value, list):
            said = [str(m.get("text", "")) for m in value if isinstance(m, dict)]
            items.append((name, "\n".join(said), True))
        elif isinstance(value, (dict, list)):
            items.append((name, json.dumps(value, ensure_ascii=False, indent=2), True))
        elif isinstance(value, bool):
            items.append((name, "是" if value else "否", False))
        elif value is None:
            items.append((name, "—", False))
        else:
            items.append((name, str(value), False))
    return items


def beijing_time(value: datetime | str | None) -> str:
    """`value` as `YYYY-MM-DD HH:MM` Beijing time; "—" for None."""
    if value is None:
        return "—"
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M")


def duration(seconds: float) -> str:
    """A waiting time in Chinese: `不到 1 分钟`, `12 分钟`, `2 小时 5 分钟`, `3 天 4 小时`."""
    minutes = int(max(seconds, 0) // 60)
    if minutes < 1:
        return "不到 1 分钟"
    if minutes < 60:
        return f"{minutes} 分钟"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} 小时 {minutes} 分钟"
    days, hours = divmod(hours, 24)
    return f"{days} 天 {hours} 小时"


#: Staff offers: plans, states and the role limits an offer can exceed.
PLANS = {
    "personalized_installment": "个性化分期（停息挂账）",
    "loan_extension": "贷款延期",
    "fee_waiver": "减免罚息一次还清",
    "lump_sum_settlement": "一次性结清",
    "promise_to_pay": "承诺还款",
}
OFFER_STATUSES = {
    "awaiting_approval": "待主管审批",
    "approved": "已批准，待发送",
    "sent": "已发送，等待债务人确认",
    "accepted": "债务人已确认，协议已登记",
    "declined": "债务人已拒绝",
    "expired": "债务人未在期限内答复，已过期",
    "changed": "确认时账户数字已变化，未登记",
    "superseded": "已被新方案取代",
}
LIMITS = {"waiver": "减免金额", "months": "期数", "interest_share": "利息减免比例"}
#: Why the assistant left a case to a negotiator (`negotiation_proposals.reason`).
PROPOSAL_REASONS = {
    "broken_plans": "曾多次未履行还款方案",
    "no_affordable_plan": "没有可用于还款的收入",
    "unaffordable": "可承受金额不足以在期限内还清",
    "waiver_too_large": "减免金额超出助手权限",
    "term_too_long": "期限超出助手权限",
}
PROPOSAL_STATUSES = {"pending": "待处理", "accepted": "已达成协议"}


#: The script a debtor reads (`bot.domain.script`), as the reply box says it.
READING_SCRIPTS = {
    "zh-Hant": "该债务人使用繁体字：您的回复将自动转换为繁体字后发送。",
    "zh-Hant-TW": "该债务人使用繁体字（台湾用语）：您的回复将自动转换为繁体字后发送。",
    "zh-Hant-HK": "该债务人使用繁体字（香港用语）：您的回复将自动转换为繁体字后发送。",
}


#: Agreements after the sweep: their states and their installments'.
AGREEMENT_STATUSES = {
    "active": "执行中",
    "completed": "已完成",
    "broken": "已中止（违约）",
    "replaced": "已由新方案取代",
}
INSTALLMENT_STATUSES = {"due": "待还", "paid": "已还清", "late": "已逾期"}
