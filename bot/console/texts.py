"""What the console tells staff in Chinese: notices, HTTP errors and refused case changes.

The store refuses a change with a code (`bot.store.worklist.CaseError.code`);
the console words it here, so that every sentence staff read lives in the console.
"""

from __future__ import annotations

from bot.store.staff import StaffInputError
from bot.store.worklist import CaseErrorCode

#: What `?notice=` codes on a page say; anything else is ignored.
NOTICES = {
    "claim_lost": ("warning", "该案件已被其他同事认领。"),
    "closed": ("success", "案件已结束，对话已交还智能助手。"),
    "resume_pending": (
        "warning",
        "案件已结束，但未能通知智能助手恢复对话；系统会每 10 秒自动重试。",
    ),
    "acknowledged": ("success", "已确认接收该转交。"),
    "acknowledge_failed": ("warning", "该转交记录不存在或已处理。"),
    "signed_out": ("success", "您已退出登录。"),
}

#: The error message of an HTTP status the console answers without a more precise one.
HTTP_MESSAGES = {
    400: "请求无效",
    401: "请先登录",
    403: "没有权限",
    404: "页面不存在",
    405: "不支持该请求方式",
    413: "请求内容过大（上限 64 KB）",
    500: "服务器内部错误",
}

#: Why the store refused to change a case or a referral, by `CaseError.code`.
CASE_ERRORS: dict[CaseErrorCode, str] = {
    "claim_lost": "该案件已被其他同事认领",
    "closed_or_absent": "该案件不存在或已结束",
    "not_holder": "只能结束自己认领的案件",
    "unknown_outcome": "请选择有效的结案结果",
    "referral_handled": "该转交记录不存在或已处理",
    "conflict": "操作冲突，请重试",
}


#: Why a staff account change was refused, by `StaffInputError.code`.
STAFF_ERRORS = {
    "bad_username": "用户名须为 2-64 个小写字母、数字、下划线、点或连字符",
    "password_too_short": "密码至少需要 {length} 个字符",
    "password_too_long": "密码不能超过 {length} 个字符",
    "bad_display_name": "显示名不能为空，且不超过 {length} 个字符",
    "unknown_role": "角色须为 {roles}",
    "username_taken": "用户名 {username} 已存在",
    "unknown_username": "用户名 {username} 不存在",
}


def staff_error(error: StaffInputError) -> str:
    """The sentence staff read for a refused account change."""
    values = dict(error.values)
    if "roles" in values:
        values["roles"] = " 或 ".join(str(role) for role in values["roles"])  # type: ignore[attr-defined]
    return STAFF_ERRORS[error.code].format(**values)


#: Why the engine refused an offer's terms, by `bot.domain.staff_offers.Refusal.reason`;
#: `{…}` are the refusal's figures.
OFFER_REFUSALS = {
    "plan_not_allowed": "协商专员不能制定此类方案",
    "product": "该方案不适用于此账户的产品",
    "nothing_overdue": "该账户没有逾期欠款",
    "months_or_monthly": "请填写期数或每期金额",
    "one_off_single_payment": "一次性还款方案只能为 1 期",
    "term_too_long": "期数超过上限 {months} 个月（第七十条：不超过 5 年）",
    "term_too_short": "期数不能少于 {months} 个月",
    "monthly_mismatch": "每期金额与期数不符：按该期数每期为 {monthly} 元",
    "first_due_past": "首期还款日不能早于今天",
    "first_due_too_far": "首期还款日不能晚于 {date}",
    "not_cents": "金额须为正数，最多两位小数",
    "waiver_of_principal": "不能减免本金：减免最多 {waiver} 元（利息、罚息及费用）",
    "waiver_beyond_fees": "罚息减免方案最多减免罚息及费用 {waiver} 元",
    "waiver_not_allowed": "承诺还款不能附带减免",
    "nothing_to_pay": "减免后没有应还金额，请转主管处理",
    "unaffordable_without_note": (
        "每期金额超出债务人财务状况可承受的范围（或财务状况不完整），请填写说明"
    ),
    "beyond_all_authority": "超出所有角色的审批权限，不能制定",
}

#: Why an offer could not be approved or sent, by `bot.store.staff_offers.OfferError.code`.
OFFER_ERRORS = {
    "absent": "方案不存在",
    "not_awaiting": "该方案不在待审批状态",
    "not_sendable": "该方案尚未批准或已处理",
    "not_supervisor": "只有主管可以审批方案",
    "own_offer": "不能审批自己制定的超权限方案",
    "beyond_approver_limits": "该方案超出您的审批权限",
}


#: What the payment push endpoint (`bot.console.payment_push`) answers a refused request.
PUSH_ERRORS = {
    "not_configured": "未配置付款推送凭据（PAYMENT_PUSH_CLIENTS），付款推送不可用",
    "unsigned": "签名无效：{detail}",
    "nonce_used": "签名无效：该 nonce 已使用，请为每个请求重新签名",
    "not_json_type": "Content-Type 须为 application/json",
    "not_json": "请求内容须为 UTF-8 编码的 JSON",
    "not_object": '请求内容须为 JSON 对象 {"payments": [...]}',
    "no_payments": "payments 须为包含 1 到 {limit} 笔付款的列表",
    "too_large": "请求内容过大（上限 64 KB）",
}

#: What `?notice=` codes on the offer pages say.
OFFER_NOTICES = {
    "sent": ("success", "方案已发送给债务人，等待债务人确认。"),
    "awaiting": ("warning", "方案超出您的权限，已提交主管审批；批准后会自动发送给债务人。"),
    "not_sent": ("warning", "方案已批准，但未能送达债务人；请稍后点击“重新发送”。"),
    "approved": ("success", "已批准，方案已发送给债务人。"),
    "approval_refused": ("error", "不能审批该方案：超出您的权限，或是您自己制定的方案。"),
    "approval_stale": ("warning", "该方案已被处理或已被新方案取代。"),
}
