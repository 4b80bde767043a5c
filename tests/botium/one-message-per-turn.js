// SIMPLEREST_PARSER_HOOK of botium.json: the REST channel answers one user
// message with a list of bot messages (Rasa's `[{"recipient_id", "text",
// "buttons"}, ...]`); this turns the list into one message, its texts joined by
// line breaks and every button kept, so that each #bot section of a convo is
// the whole answer to the #me before it. An empty list (a person holds the
// conversation, the bot is silent) stays empty.
'use strict'

module.exports = ({ body, changeBody }) => {
  if (!Array.isArray(body) || body.length === 0) return
  const texts = body.map(message => message && message.text).filter(text => text)
  const buttons = body.flatMap(message => (message && message.buttons) || [])
  changeBody([{ recipient_id: body[0].recipient_id, text: texts.join('\n'), buttons }])
}
