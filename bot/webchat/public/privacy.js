// What the page keeps on the device, and for how long.
//
// Pure functions, no DOM: tests/unit/test_webchat.py runs them with Node.
// The history is kept in localStorage so that a reload, or a return within
// the session's life, shows it again; it is dropped with the session token
// (`expiresAt`, told by the server) and capped at MAX_STORED messages. What
// the debtor typed is stored with its digits masked whenever the assistant
// had just asked for identity details (name, ID number suffix, mobile), and
// any long run of digits (a mobile, an ID or card number) is masked in every
// typed message. Button titles are the assistant's own words: kept as shown.

export const MAX_STORED = 100;

// The assistant's texts that ask for (or about) the identity details (domain.yml),
// in Simplified or Traditional characters (Taiwan writes 身分證).
export const IDENTITY_PROMPT = /身份证|身份證|身分證|手机号|手機號|姓名/;

const DIGIT = "[0-9０-９]";
const LONG_NUMBER = new RegExp(`${DIGIT}(?:[\\s-]*${DIGIT}){6,}`, "g");
const ANY_DIGIT = new RegExp(DIGIT, "g");
const MASK = "•";

// `text` as it may be stored: `afterPrompt` is the assistant's message it answers.
export function storedUserText(text, afterPrompt) {
  const source = String(text ?? "");
  if (IDENTITY_PROMPT.test(String(afterPrompt ?? ""))) {
    // The ID suffix may end in X.
    return source.replace(ANY_DIGIT, MASK).replace(/•[xXｘＸ]/g, MASK + MASK);
  }
  return source.replace(LONG_NUMBER, (number) => number.replace(ANY_DIGIT, MASK));
}

// The saved state, if it may still be used at `now` (ms); null otherwise.
export function usableState(saved, now) {
  if (!saved || typeof saved !== "object") return null;
  const expiresAt = Number(saved.expiresAt);
  if (!Number.isFinite(expiresAt) || expiresAt <= now) return null;
  if (typeof saved.sessionId !== "string" || !Array.isArray(saved.messages)) return null;
  return {
    sessionId: saved.sessionId,
    conversationId: typeof saved.conversationId === "string" ? saved.conversationId : null,
    expiresAt,
    messages: saved.messages.slice(-MAX_STORED),
    staffAfter: Number(saved.staffAfter) || 0,
    script: typeof saved.script === "string" ? saved.script : "zh-Hans",
  };
}
