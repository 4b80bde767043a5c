/* Staff console: refreshes the queue every 5 s and the transcript every 2 s.
   Text is only ever set with textContent, never parsed as HTML. */
"use strict";
(function () {
  var meta = document.querySelector('meta[name="csrf-token"]');
  var csrfToken = meta ? meta.getAttribute("content") : "";

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (name) {
      node.setAttribute(name, attrs[name]);
    });
    if (text !== undefined && text !== null) {
      node.textContent = text;
    }
    return node;
  }

  function getJSON(url) {
    return fetch(url, {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    }).then(function (response) {
      if (response.status === 401) {
        window.location.href = "/login";
        return null;
      }
      return response.json().then(function (data) {
        return { status: response.status, data: data };
      });
    });
  }

  function queue(table) {
    var count = document.getElementById("queue-count");
    var empty = document.getElementById("queue-empty");

    function cell(row, label, text) {
      var td = el("td", label ? { "data-label": label } : {}, text);
      row.appendChild(td);
      return td;
    }

    function row(c) {
      var tr = el("tr", { class: "priority-" + c.priority });
      cell(tr, "优先级", String(c.priority));
      cell(tr, "编号").appendChild(el("a", { href: "/cases/" + c.id }, c.reference));
      cell(tr, "原因", c.reason_label + (c.category_label ? "（" + c.category_label + "）" : ""));
      cell(tr, "渠道", c.channel_label);
      cell(tr, "等待时间", c.waited);
      cell(tr, "状态", c.status_label + (c.staff_name ? " · " + c.staff_name : ""));
      var action = cell(tr, "");
      if (c.status === "waiting") {
        var form = el("form", { method: "post", action: "/cases/" + c.id + "/claim", class: "inline" });
        form.appendChild(el("input", { type: "hidden", name: "csrf_token", value: csrfToken }));
        form.appendChild(el("button", { type: "submit" }, "认领"));
        action.appendChild(form);
      } else {
        action.appendChild(el("a", { class: "button secondary", href: "/cases/" + c.id }, "查看"));
      }
      return tr;
    }

    function refresh() {
      getJSON(table.getAttribute("data-poll"))
        .then(function (result) {
          if (!result || result.status !== 200) {
            return;
          }
          var body = el("tbody");
          result.data.cases.forEach(function (c) {
            body.appendChild(row(c));
          });
          table.replaceChild(body, table.querySelector("tbody"));
          if (count) {
            count.textContent = String(result.data.cases.length);
          }
          if (empty) {
            empty.hidden = result.data.cases.length > 0;
          }
        })
        .catch(function () {});
    }

    window.setInterval(refresh, 5000);
  }

  function transcript(list) {
    var caseId = list.getAttribute("data-case");
    var last = parseInt(list.getAttribute("data-last-id") || "0", 10);
    var status = document.getElementById("transcript-status");
    var busy = false;
    var timer = null;

    function item(event) {
      var li = el("li", { class: "from-" + event.from });
      li.appendChild(el("span", { class: "who" }, event.from_label + (event.staff ? " · " + event.staff : "")));
      li.appendChild(el("time", {}, event.at_label));
      li.appendChild(el("p", {}, event.text));
      if (event.buttons && event.buttons.length) {
        li.appendChild(el("p", { class: "buttons" }, "选项：" + event.buttons.join("、")));
      }
      return li;
    }

    function poll() {
      if (busy) {
        return;
      }
      busy = true;
      getJSON("/api/cases/" + caseId + "/transcript?after=" + last)
        .then(function (result) {
          if (!result) {
            return;
          }
          if (result.status === 404) {
            status.textContent = "案件状态已变化，请返回待处理案件列表。";
            window.clearInterval(timer);
            return;
          }
          if (result.status !== 200) {
            status.textContent = result.data.error || "对话记录暂时无法读取";
            return;
          }
          status.textContent = "";
          result.data.events.forEach(function (event) {
            list.appendChild(item(event));
            last = Math.max(last, event.id);
          });
          if (result.data.events.length) {
            list.scrollTop = list.scrollHeight;
          }
        })
        .catch(function () {
          status.textContent = "网络连接中断，正在重试……";
        })
        .then(function () {
          busy = false;
        });
    }

    list.scrollTop = list.scrollHeight;
    timer = window.setInterval(poll, 2000);
  }

  var table = document.getElementById("queue");
  if (table) {
    queue(table);
  }
  var list = document.getElementById("transcript");
  if (list) {
    transcript(list);
  }
})();
