// The debtors' web chat page: <deep-chat> for the UI, socket.io to Rasa's
// `socketio` channel (same origin) for the messages.
//
// - The server gives the page a session token (`session_confirm`) and the id
//   of its conversation. The token is the page's secret: it travels only in
//   socket.io events and request bodies, never in a URL. The page sends it in
//   `session_request` on every (re)connection and half-way through its life,
//   and gets a fresh one for the same conversation, or, once it has expired, a
//   token of a new conversation (the history shown stays, under a note).
// - The token and the messages shown are kept in localStorage until the token
//   expires, at most MAX_STORED messages, with what the debtor typed masked as
//   privacy.js says, and shown again after a reload.
// - Rasa's buttons (`quick_replies`) become buttons under the message:
//   a click sends the payload and shows the title as the debtor's message.
// - Staff replies during a handoff arrive as ordinary `bot_uttered` events.
//   A message that names its sender (`staff`, or `metadata.staff`) is marked as
//   from a person. On every (re)connection and after unmarked bot messages the
//   page also asks its channel's `staff_messages` (POST, with its token) for
//   staff replies: it marks those it shows and adds those it missed while
//   closed or offline.
// - Every bot message names the script it was written in (`script`: zh-Hans,
//   zh-Hant, zh-Hant-TW, zh-Hant-HK); the page shows its own labels in the
//   script of the latest one (labels.js) and keeps it with the history.
import { io } from "./vendor/socket.io.esm.min.js";
import "./vendor/deep-chat.js";
import { escapeHtml, formatBotText } from "./format.js";
import { labelsFor, languageOf } from "./labels.js";
import { MAX_STORED, storedUserText, usableState } from "./privacy.js";

const STORE_KEY = "debt-webchat.v1";
const TYPING_TIMEOUT_MS = 10000;
const MAX_MESSAGE_LENGTH = 500;
// Ask for a fresh token no sooner than this after the last one.
const MIN_REFRESH_MS = 30000;

// The <deep-chat> element, made by start() once everything it needs is at hand.
let chat = null;
const statusLine = document.getElementById("status");

// --- what is kept across reloads ------------------------------------------------------------

function emptyState() {
  return { sessionId: null, conversationId: null, expiresAt: 0, messages: [], staffAfter: 0, script: "zh-Hans" };
}

function loadState() {
  let saved = null;
  try {
    saved = usableState(JSON.parse(localStorage.getItem(STORE_KEY) || "null"), Date.now());
    // An expired session's history is not kept on the device.
    if (!saved) localStorage.removeItem(STORE_KEY);
  } catch {
    saved = null;
  }
  return saved || emptyState();
}

const state = loadState();
// The page's words, in the conversation's script.
let words = labelsFor(state.script);

// The page keeps every message in memory (the chat component's indices are
// the list's); the device keeps the last MAX_STORED.
function saveState() {
  try {
    localStorage.setItem(STORE_KEY, JSON.stringify({ ...state, messages: state.messages.slice(-MAX_STORED) }));
  } catch {
    // Private mode or a full storage: the conversation still works, unsaved.
  }
}

// --- rendering ------------------------------------------------------------------------------

function quickRepliesHtml(message, index) {
  if (!message.buttons || !message.buttons.length) return "";
  const buttons = message.buttons
    .map(
      (button, i) =>
        `<button type="button" class="quick-reply" data-message="${index}" data-button="${i}"` +
        `${message.answered ? " disabled" : ""}>${escapeHtml(button.title)}</button>`,
    )
    .join("");
  return `<div class="quick-replies" role="group" aria-label="${escapeHtml(words.quickReplies)}">${buttons}</div>`;
}

function botHtml(message, index) {
  const from = message.staff
    ? `<span class="from-staff">${escapeHtml(words.staff)}${message.staff === true ? "" : ` ${escapeHtml(message.staff)}`}</span>`
    : "";
  return (
    `<div class="bot-message${message.staff ? " staff-message" : ""}" data-index="${index}">` +
    from +
    formatBotText(message.text, message.script) +
    quickRepliesHtml(message, index) +
    `</div>`
  );
}

function toDeepChat(message, index) {
  if (message.role === "user") return { role: "user", text: message.text };
  if (message.role === "note") return { role: "ai", html: `<div class="session-note">${escapeHtml(message.text)}</div>` };
  return { role: "ai", html: botHtml(message, index) };
}

function rerender(index) {
  const message = state.messages[index];
  if (message && message.role === "ai" && chat?.updateMessage) {
    chat.updateMessage({ html: botHtml(message, index) }, index);
    if (index === state.messages.length - 1) chat.scrollToBottom?.();
  }
}

// --- typing indicator -----------------------------------------------------------------------

const typingIndicator = document.getElementById("typing");
let typingTimer = 0;

function showTyping() {
  clearTimeout(typingTimer);
  typingIndicator.hidden = false;
  // During a handoff the assistant stays silent: stop waiting after a while.
  typingTimer = setTimeout(hideTyping, TYPING_TIMEOUT_MS);
}

function hideTyping() {
  clearTimeout(typingTimer);
  typingIndicator.hidden = true;
}

// --- the connection -------------------------------------------------------------------------

const socketPath = document.querySelector('meta[name="webchat-socket-path"]')?.content || "/socket.io";
const socket = io({ path: socketPath, transports: ["websocket", "polling"], autoConnect: false });
let confirmed = false;
const outbox = [];
let lastSent = null;
let refreshTimer = 0;

function requestSession() {
  socket.emit("session_request", { session_id: state.sessionId });
}

socket.on("connect", () => {
  confirmed = false;
  statusLine.textContent = words.restoring;
  requestSession();
});

socket.on("session_confirm", (confirm) => {
  const token = typeof confirm === "string" ? confirm : confirm?.session_id;
  if (typeof token !== "string" || !token) return;
  const conversationId = typeof confirm?.conversation_id === "string" ? confirm.conversation_id : null;
  if (state.conversationId && conversationId && conversationId !== state.conversationId) {
    // The old session had expired: what is shown stays, the new conversation starts below it.
    const note = { role: "note", text: words.expired, at: Date.now() };
    state.messages.push(note);
    chat?.addMessage(toDeepChat(note, state.messages.length - 1));
    state.staffAfter = 0;
  }
  state.sessionId = token;
  state.conversationId = conversationId;
  state.expiresAt = Number(confirm?.expires_at) * 1000 || Date.now() + MIN_REFRESH_MS * 2;
  saveState();
  clearTimeout(refreshTimer);
  const halfLife = (state.expiresAt - Date.now()) / 2;
  const delay = Math.min(2 ** 31 - 1, Math.max(MIN_REFRESH_MS, halfLife));
  refreshTimer = setTimeout(() => socket.connected && requestSession(), delay);
  confirmed = true;
  statusLine.textContent = words.online;
  while (outbox.length) {
    const data = outbox.shift();
    data.session_id = state.sessionId;
    lastSent = data;
    socket.emit("user_uttered", data);
  }
  checkStaff();
});

// A message sent with a token that had just expired: ask again, then send it again (once).
const resent = new WeakSet();
socket.on("session_expired", () => {
  confirmed = false;
  if (lastSent && !resent.has(lastSent)) {
    resent.add(lastSent);
    outbox.unshift(lastSent);
  }
  lastSent = null;
  requestSession();
});

socket.on("disconnect", () => {
  confirmed = false;
  statusLine.textContent = words.disconnected;
});

socket.io.on("reconnect_failed", () => {
  statusLine.textContent = words.unreachable;
});

socket.on("bot_uttered", (data) => {
  if (!data || typeof data !== "object") return;
  const text = typeof data.text === "string" ? data.text : "";
  const buttons = (data.quick_replies || data.buttons || [])
    .filter((b) => b && typeof b.title === "string" && typeof b.payload === "string")
    .map((b) => ({ title: b.title, payload: b.payload }));
  if (!text && !buttons.length) return;
  hideTyping();
  if (typeof data.script === "string") useScript(data.script);
  const staff = data.staff || data.metadata?.staff || null;
  const script = typeof data.script === "string" ? data.script : undefined;
  const message = { role: "ai", text, buttons, staff, script, at: Date.now() };
  state.messages.push(message);
  saveState();
  chat.addMessage(toDeepChat(message, state.messages.length - 1));
  if (!staff) scheduleStaffCheck();
});

function lastBotText() {
  for (let i = state.messages.length - 1; i >= 0; i -= 1) {
    if (state.messages[i].role === "ai") return state.messages[i].text;
  }
  return "";
}

// `typed`: written by the debtor (stored masked), not a button's title.
function send(payload, shown, typed) {
  for (const message of state.messages) if (message.buttons?.length) message.answered = true;
  const stored = typed ? storedUserText(shown, lastBotText()) : shown;
  state.messages.push({ role: "user", text: stored, at: Date.now() });
  saveState();
  disableQuickReplies();
  const data = { message: payload, session_id: state.sessionId };
  if (socket.connected && confirmed && state.sessionId) {
    lastSent = data;
    socket.emit("user_uttered", data);
  } else outbox.push(data);
  showTyping();
}

// --- staff replies --------------------------------------------------------------------------

let staffTimer = 0;

function scheduleStaffCheck() {
  clearTimeout(staffTimer);
  staffTimer = setTimeout(checkStaff, 500);
}

async function checkStaff() {
  if (!state.sessionId) return;
  let replies;
  try {
    const response = await fetch(new URL("staff_messages", document.baseURI), {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ session_id: state.sessionId, after: state.staffAfter }),
      credentials: "omit",
      cache: "no-store",
    });
    if (!response.ok) return;
    replies = await response.json();
  } catch {
    return;
  }
  if (!Array.isArray(replies)) return;
  let changed = false;
  for (const reply of replies) {
    if (typeof reply?.text !== "string" || !reply.text) continue;
    const index = state.messages.findIndex((m) => m.role === "ai" && m.text === reply.text);
    if (index < 0) {
      // Sent while this page was closed or offline: show it now, so nothing a
      // negotiator wrote is lost.
      const message = { role: "ai", text: reply.text, buttons: [], staff: reply.staff || true, at: Date.now() };
      state.messages.push(message);
      chat?.addMessage(toDeepChat(message, state.messages.length - 1));
      changed = true;
    } else if (!state.messages[index].staff) {
      state.messages[index].staff = reply.staff || true;
      rerender(index);
      changed = true;
    }
    state.staffAfter = Math.max(state.staffAfter, Number(reply.timestamp) || 0);
  }
  if (changed || replies.length) saveState();
}

// --- quick replies --------------------------------------------------------------------------

function quickReplyButtons() {
  return chat?.shadowRoot ? [...chat.shadowRoot.querySelectorAll(".quick-reply")] : [];
}

function disableQuickReplies() {
  for (const button of quickReplyButtons()) button.disabled = true;
}

function onQuickReply(event) {
  const button = event.target?.closest ? event.target.closest(".quick-reply") : event.target;
  if (!button || button.disabled) return;
  const message = state.messages[Number(button.dataset.message)];
  const choice = message?.buttons?.[Number(button.dataset.button)];
  if (!choice || message.answered) return;
  chat.addMessage({ role: "user", text: choice.title });
  send(choice.payload, choice.title, false);
}

// --- the component --------------------------------------------------------------------------

async function auxiliaryStyle() {
  try {
    const response = await fetch("chat.css");
    return response.ok ? await response.text() : "";
  } catch {
    return "";
  }
}

function label(root) {
  const input = root.querySelector("#text-input");
  if (input) {
    input.setAttribute("aria-label", words.input);
    input.setAttribute("role", "textbox");
  }
  const submit = root.querySelector(".input-button, #submit-button, .submit-button");
  if (submit) {
    submit.setAttribute("aria-label", words.send);
    submit.setAttribute("role", "button");
  }
  const messages = root.querySelector("#messages");
  if (messages) {
    messages.setAttribute("role", "log");
    messages.setAttribute("aria-live", "polite");
    messages.setAttribute("aria-label", words.log);
  }
}

// deep-chat renders itself 20 ms after it is created, and again (on the next task) after a
// property is set. Its first render writes its defaults (320 x 350 px, a grey border) into
// the element's inline style wherever `chatStyle` has not set one already, and later renders
// leave those in place. So the element is created only after the awaited style sheet, and
// every property, `chatStyle` first, is set in the same task as its creation: the first
// render sees all of them, however long the fetch took (a reload, a busy server).
function createChat(style) {
  const chat = document.createElement("deep-chat");
  chat.id = "chat";
  chat.setAttribute("role", "region");
  chat.setAttribute("aria-label", words.region);
  // deep-chat fetches a font from Google unless its element names another family.
  chat.style.fontFamily = getComputedStyle(document.documentElement).fontFamily;
  chat.chatStyle = {
    width: "100%",
    height: "100%",
    border: "none",
    borderRadius: "0",
    backgroundColor: "#f4f6fa",
    fontSize: "15px",
    fontFamily: chat.style.fontFamily,
  };
  chat.auxiliaryStyle = style;
  chat.history = state.messages.map(toDeepChat);
  chat.displayLoadingBubble = false;
  chat.textInput = {
    placeholder: { text: words.placeholder },
    characterLimit: MAX_MESSAGE_LENGTH,
    styles: { container: { borderRadius: "18px", boxShadow: "none", border: "1px solid #c4c9d4" } },
  };
  chat.messageStyles = {
    default: {
      shared: { bubble: { maxWidth: "86%", lineHeight: "1.55" } },
      ai: { bubble: { backgroundColor: "#ffffff", color: "#1d2330", border: "1px solid #e1e5ee" } },
      user: { bubble: { backgroundColor: "#1f5fbf", color: "#ffffff" } },
    },
    html: {
      shared: { bubble: { maxWidth: "92%" } },
      ai: { bubble: { backgroundColor: "#ffffff", color: "#1d2330", border: "1px solid #e1e5ee" } },
    },
  };
  chat.errorMessages = {
    displayServiceErrorMessages: false,
    overrides: { default: words.networkError },
  };
  chat.htmlClassUtilities = { "quick-reply": { events: { click: onQuickReply } } };
  chat.onComponentRender = () => {
    if (chat.shadowRoot) label(chat.shadowRoot);
  };
  chat.connect = {
    websocket: true,
    handler: (_, signals) => {
      signals.newUserMessage.listener = (body) => {
        const text = (body?.messages || []).map((m) => m.text || "").join("\n").trim();
        if (text) send(text, text, true);
      };
      const open = () => signals.onOpen();
      if (socket.connected) open();
      socket.on("connect", open);
    },
  };
  return chat;
}

// --- the page's own words -------------------------------------------------------------------

function showWords() {
  document.documentElement.lang = languageOf(state.script);
  document.title = words.title;
  document.querySelector("header.bar h1").textContent = words.title;
  document.querySelector("section.notice").setAttribute("aria-label", words.noticeRegion);
  document.getElementById("notice").textContent = words.notice;
  const askHuman = document.getElementById("ask-human");
  askHuman.textContent = words.askHuman;
  askHuman.setAttribute("aria-label", words.askHumanHint);
  const forget = document.getElementById("forget");
  forget.textContent = words.forget;
  forget.setAttribute("aria-label", words.forgetHint);
  document.querySelector("#typing > span:last-child").textContent = words.typing;
  if (confirmed) statusLine.textContent = words.online;
  const root = chat?.shadowRoot;
  if (root) {
    label(root);
    root.querySelector("#text-input")?.setAttribute("deep-chat-placeholder-text", words.placeholder);
    chat.setAttribute("aria-label", words.region);
  }
}

// Show the page in `script` from now on (the script of the latest bot message).
function useScript(script) {
  if (script === state.script) return;
  state.script = script;
  words = labelsFor(script);
  saveState();
  showWords();
}

async function start() {
  showWords();
  const style = await auxiliaryStyle();
  chat = createChat(style);
  document.getElementById("main").appendChild(chat);
  socket.connect();
}

document.getElementById("ask-human").addEventListener("click", () => {
  if (!chat) return;
  // In the debtor's script: a Simplified "转人工" would switch the conversation back.
  const text = words.askHuman;
  chat.addMessage({ role: "user", text });
  send(text, text, false);
});

document.getElementById("forget").addEventListener("click", () => {
  if (!window.confirm(words.forgetConfirm)) return;
  try {
    localStorage.removeItem(STORE_KEY);
  } catch {
    // nothing to clear
  }
  window.location.reload();
});

start();
