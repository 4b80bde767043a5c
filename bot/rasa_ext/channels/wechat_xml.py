"""Safe parsing of the XML that WeChat posts, and the XML of passive replies.

Bodies are parsed with `defusedxml` with DTDs forbidden, so an entity bomb, an
external entity or any other DTD trick is rejected before anything is expanded
or fetched. The parsed tree is then turned into the message and event classes
of `wechatpy` the same way `wechatpy.parse_message` does, without letting
`xmltodict` see the untrusted text.
"""

from __future__ import annotations

import time
from typing import Any
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring
from wechatpy.events import EVENT_TYPES
from wechatpy.messages import MESSAGE_TYPES, BaseMessage, UnknownMessage
from wechatpy.replies import TextReply

#: Bodies above this size are refused (413) before they are parsed.
MAX_BODY_BYTES = 64 * 1024


class UnsafeOrInvalidXml(ValueError):
    """The body is not a WeChat XML message that may safely be read."""


def _to_value(element: Element) -> Any:
    children = list(element)
    if not children:
        return element.text or ""
    value: dict[str, Any] = {}
    for child in children:
        item = _to_value(child)
        if child.tag in value:
            previous = value[child.tag]
            value[child.tag] = [*previous, item] if isinstance(previous, list) else [previous, item]
        else:
            value[child.tag] = item
    return value


def parse_xml(body: bytes | str) -> dict[str, Any]:
    """The fields of a `<xml>...</xml>` document, parsed without DTDs or entities."""
    if len(body) > MAX_BODY_BYTES:
        raise UnsafeOrInvalidXml("the body is too large")
    try:
        root = fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as error:
        raise UnsafeOrInvalidXml(f"forbidden XML construct: {type(error).__name__}") from error
    except (ParseError, ValueError, TypeError) as error:
        raise UnsafeOrInvalidXml("the body is not well-formed XML") from error
    if root.tag != "xml":
        raise UnsafeOrInvalidXml("the root element must be <xml>")
    fields = _to_value(root)
    if not isinstance(fields, dict):
        raise UnsafeOrInvalidXml("the <xml> element has no fields")
    return fields


def to_message(fields: dict[str, Any]) -> BaseMessage:
    """The `wechatpy` message or event for parsed fields (as `wechatpy.parse_message`)."""
    message = dict(fields)
    for required in ("MsgType", "FromUserName", "ToUserName"):
        if not isinstance(message.get(required), str) or not message[required].strip():
            raise UnsafeOrInvalidXml(f"the message has no {required}")
    message_type = message["MsgType"].lower()
    if message_type == "event":
        event_type = str(message.get("Event", "")).lower()
        event_key = message.get("EventKey")
        if event_type == "subscribe" and isinstance(event_key, str) and event_key:
            if event_key.startswith(("scanbarcode|", "scanimage|")):
                event_type = "subscribe_scan_product"
            elif event_key.startswith("qrscene_"):
                event_type = "subscribe_scan"
                message["Event"] = event_type
                message["EventKey"] = event_key[len("qrscene_") :]
        message_class = EVENT_TYPES.get(event_type, UnknownMessage)
    else:
        message_class = MESSAGE_TYPES.get(message_type, UnknownMessage)
    try:
        parsed: BaseMessage = message_class(message)
        # Reading the fields converts them (CreateTime, MsgId to int): fail here, not later.
        _ = (parsed.id, parsed.source, parsed.target, parsed.create_time)
    except (TypeError, ValueError, OverflowError, OSError) as error:
        raise UnsafeOrInvalidXml("a field of the message has the wrong type") from error
    return parsed


def text_reply(message: BaseMessage, content: str) -> str:
    """The passive reply XML answering `message` with `content`."""
    # CDATA cannot contain "]]>": split it over two sections.
    safe = content.replace("]]>", "]]]]><![CDATA[>")
    return str(TextReply(message=message, content=safe, time=int(time.time())).render())
