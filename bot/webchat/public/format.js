// Turn the assistant's plain-text messages into safe HTML for the chat bubbles.
//
// Pure functions, no DOM: tests/unit/test_webchat.py runs them with Node.
// Every piece of message text goes through `escapeHtml`; the only markup is
// the one written here.
//
// Formats recognised (see domain.yml):
// - a repayment schedule (`utter_schedule`): a heading line, then lines
//   "1. 2025年7月1日  1,024.35" -> a table 期数 / 还款日 / 金额 (元);
// - an offer (`utter_offer_*`): "方案1：个性化分期（停息挂账）。..." -> the plan's
//   name as a heading, its key figures as a two-column table, then the full text;
// - numbered lines "1. 逾期欠款：..." (`utter_terms_*`) -> a two-column table;
// - anything else: paragraphs, with line breaks kept.
// The texts may be in Traditional characters (`script`, bot/domain/script.py): they are
// matched after folding the few Traditional characters the patterns name (還, 個 …)
// one for one, and the tables' own labels are those of the script (labels.js).

import { labelsFor } from "./labels.js";

const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

export function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ESCAPES[c]);
}

const AMOUNT = "[\\d,]+(?:\\.\\d+)?";
const SCHEDULE_LINE = new RegExp(`^\\s*(\\d+)\\.\\s+(\\S+)\\s+(${AMOUNT})\\s*(?:元)?\\s*$`);
const NUMBERED_LINE = /^\s*(\d+)\.\s*(.+)$/;
const OFFER = /^方案(\d+)：([^。]+)。([\s\S]*)$/;

// Key figures of an offer, in the order shown: [label, pattern with one group, unit]
// (labels and units are keys of labels.js).
const OFFER_FIGURES = [
  ["pause", /暂停还款\s*(\d+)\s*个月/, "unitMonths"],
  ["total", /(?:共|一次还清|一次还|还清逾期欠款)\s*(AMOUNT)\s*元/, "unitYuan"],
  ["catchUp", /逾期的\s*(AMOUNT)\s*元/, "unitYuan"],
  ["instalments", /分\s*(\d+)\s*(?:期|个月)/, "unitInstalments"],
  ["monthly", /每月(?:补)?还\s*(AMOUNT)\s*元/, "unitYuan"],
  ["catchUpPeriod", /元（(.+?至.+?)）[，；。]/, ""],
  ["regularMonthly", /正常月供\s*(AMOUNT)\s*元/, "unitYuan"],
  ["first", /首期\s*([^，；。\s]+)/, ""],
  ["last", /末期\s*([^，；。\s]+)/, ""],
  ["deadline", /在\s*(\S+?)\s*前/, "unitBefore"],
  ["waiver", /减免[^\d，；。]*?(AMOUNT)\s*元/, "unitYuan"],
].map(([label, pattern, unit]) => [label, new RegExp(pattern.source.replaceAll("AMOUNT", AMOUNT)), unit]);

// The Traditional forms of the characters the patterns above name, each one character.
const FOLD = { 還: "还", 暫: "暂", 個: "个", 補: "补", 減: "减" };

// `text` with those characters in their Simplified form (same length, same positions).
export function fold(text) {
  return text.replace(/[還暫個補減]/g, (c) => FOLD[c]);
}

function paragraphs(text) {
  return text
    .split(/\n{2,}/)
    .map((part) => `<p>${escapeHtml(part.trim()).replace(/\n/g, "<br>")}</p>`)
    .join("");
}

// The rows of a schedule, or null if `lines` are not all schedule lines.
export function scheduleRows(lines) {
  const rows = [];
  for (const line of lines) {
    const match = SCHEDULE_LINE.exec(line);
    if (!match) return null;
    rows.push({ number: match[1], due: match[2], amount: match[3] });
  }
  return rows.length ? rows : null;
}

// The key figures of an offer text, or null if it is not an offer; labels in `script`.
export function offerFigures(text, script) {
  const words = labelsFor(script);
  const match = OFFER.exec(text.trim());
  if (!match) return null;
  const body = match[3];
  const folded = fold(body);
  const figures = [];
  for (const [label, pattern, unit] of OFFER_FIGURES) {
    const found = pattern.exec(folded);
    if (!found) continue;
    // The captured figure as written (folding keeps every position).
    const start = found.index + found[0].indexOf(found[1]);
    const value = body.slice(start, start + found[1].length);
    figures.push([words[label], unit ? `${value} ${words[unit]}` : value]);
  }
  return { index: match[1], name: match[2], figures, body };
}

function table(caption, head, rows, className) {
  const header = head ? `<thead><tr>${head.map((h) => `<th scope="col">${escapeHtml(h)}</th>`).join("")}</tr></thead>` : "";
  const body = rows
    .map((cells) => `<tr>${cells.map((c, i) => (i === 0 && !head ? `<th scope="row">${escapeHtml(c)}</th>` : `<td>${escapeHtml(c)}</td>`)).join("")}</tr>`)
    .join("");
  return `<table class="${className}">${caption ? `<caption>${escapeHtml(caption)}</caption>` : ""}${header}<tbody>${body}</tbody></table>`;
}

// HTML for one message of the assistant, written in `script` (Simplified if not given).
export function formatBotText(text, script) {
  const source = String(text ?? "").trim();
  if (!source) return "";
  const words = labelsFor(script);

  const offer = offerFigures(source, script);
  if (offer && offer.figures.length) {
    return (
      `<div class="offer">` +
      table(`方案${offer.index}：${offer.name}`, null, offer.figures, "wc-table wc-offer") +
      `<p class="offer-text">${escapeHtml(source)}</p></div>`
    );
  }

  const lines = source.split("\n");
  // A heading line, then at least two schedule lines.
  const firstRow = lines.findIndex((line) => SCHEDULE_LINE.test(line));
  if (firstRow >= 0 && lines.length - firstRow >= 2) {
    const rows = scheduleRows(lines.slice(firstRow).filter((line) => line.trim()));
    if (rows) {
      const heading = lines.slice(0, firstRow).join("\n").trim();
      return (
        (heading ? paragraphs(heading.replace(/；?每行：[^）)]*/, "")) : "") +
        `<div class="table-scroll">` +
        table(null, [words.headNumber, words.headDue, words.headAmount], rows.map((r) => [r.number, r.due, r.amount]), "wc-table wc-schedule") +
        `</div>`
      );
    }
  }

  // Numbered "label：content" lines, as in the terms to confirm.
  const numbered = lines.slice(1).filter((line) => line.trim());
  if (lines.length >= 2 && numbered.length >= 2 && numbered.every((line) => NUMBERED_LINE.test(line))) {
    const rows = numbered.map((line) => {
      const [, number, rest] = NUMBERED_LINE.exec(line);
      const colon = rest.indexOf("：");
      return colon > 0 && colon <= 12 ? [`${number}. ${rest.slice(0, colon)}`, rest.slice(colon + 1)] : [`${number}.`, rest];
    });
    return paragraphs(lines[0]) + table(null, null, rows, "wc-table wc-terms");
  }

  return paragraphs(source);
}
