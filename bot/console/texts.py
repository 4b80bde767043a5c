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
