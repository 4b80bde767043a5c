#!/usr/bin/env node
// Runs every Botium convo in convos/ against the assistant's REST channel, one
// after the other, each in its own conversation (a new sender id per convo).
//
//   node run.js [--url http://127.0.0.1:5005] [--convos DIR] [--report FILE.json]
//
// The Rasa server's base URL comes from --url, else the RASA_URL environment
// variable, else the RASA_URL capability of botium.json (http://127.0.0.1:5005).
// Prints one line per convo and, for a failed one, Botium's error and the
// transcript; exits 0 only if every convo file ran and passed.
'use strict'

const fs = require('fs')
const os = require('os')
const path = require('path')

const HERE = __dirname
process.env.BOTIUM_CONFIG = process.env.BOTIUM_CONFIG || path.join(HERE, 'botium.json')

const { BotDriver } = require('botium-core')

function parseArgs (argv) {
  const args = { url: process.env.RASA_URL || null, convos: path.join(HERE, 'convos'), report: null }
  for (let i = 0; i < argv.length; i++) {
    const name = argv[i]
    const value = argv[i + 1]
    if (!['--url', '--convos', '--report'].includes(name) || value === undefined) {
      console.error(`usage: node run.js [--url URL] [--convos DIR] [--report FILE.json] (got ${name})`)
      process.exit(2)
    }
    args[name.slice(2)] = value
    i++
  }
  return args
}

function messageOf (msg) {
  if (!msg) return null
  return {
    sender: msg.sender,
    text: msg.messageText === undefined ? null : msg.messageText,
    buttons: (msg.buttons || []).map(b => ({ text: b.text || null, payload: b.payload || null }))
  }
}

function transcriptOf (transcript) {
  return ((transcript && transcript.steps) || []).map(step => {
    const shown = messageOf(step.actual) || messageOf(step.expected) || {}
    return Object.assign(shown, { error: step.err ? String(step.err.message || step.err) : null })
  })
}

function printTranscript (steps, shownError) {
  for (const step of steps) {
    const buttons = step.buttons && step.buttons.length
      ? ' ' + step.buttons.map(b => `[${b.text || ''} ${b.payload || ''}]`).join(' ')
      : ''
    console.log(`    #${step.sender} ${(step.text || '').replace(/\s*\n\s*/g, ' ')}${buttons}`)
    if (step.error && step.error !== shownError) console.log(`      ! ${step.error}`)
  }
}

async function runConvo (driver, convo) {
  const container = await driver.Build()
  try {
    await container.Start()
    try {
      const transcript = await convo.Run(container)
      return { passed: true, error: null, steps: transcriptOf(transcript) }
    } catch (err) {
      return { passed: false, error: String(err.message || err), steps: transcriptOf(err.transcript) }
    } finally {
      await container.Stop()
    }
  } finally {
    await container.Clean()
  }
}

async function main () {
  const args = parseArgs(process.argv.slice(2))
  const caps = {
    // Botium's per-run scratch folder: outside the work tree.
    TEMPDIR: path.join(os.tmpdir(), 'botium-debt-assistant'),
    // Where botium.json's SIMPLEREST_PARSER_HOOK file is, whatever the working directory.
    SAFEDIR: HERE
  }
  if (args.url) caps.RASA_URL = args.url.replace(/\/+$/, '')
  const driver = new BotDriver(caps)
  const convoDir = path.resolve(args.convos)
  const files = fs.readdirSync(convoDir).filter(f => f.endsWith('.convo.txt')).sort()

  const compiler = driver.BuildCompiler()
  compiler.ReadScriptsFromDirectory(convoDir)
  compiler.ExpandConvos()
  const convos = [...compiler.convos].sort((a, b) =>
    a.sourceTag.filename.localeCompare(b.sourceTag.filename))

  console.log(`Botium ${require('botium-core/package.json').version}: ${convos.length} convos ` +
    `from ${files.length} files in ${convoDir} against ${driver.caps.RASA_URL}`)
  const results = []
  for (const convo of convos) {
    const began = Date.now()
    const asserts = convo.conversation.some(step => step.sender === 'bot')
    const result = asserts
      ? await runConvo(driver, convo)
      : { passed: false, error: 'the convo has no #bot section: it asserts nothing', steps: [] }
    Object.assign(result, {
      file: convo.sourceTag.filename,
      name: convo.header.name,
      seconds: (Date.now() - began) / 1000
    })
    results.push(result)
    console.log(`${result.passed ? 'PASS' : 'FAIL'} ${result.file} (${result.name}) ${result.seconds.toFixed(1)}s`)
    if (!result.passed) {
      console.log(`  ${result.error.split('\n').join('\n  ')}`)
      printTranscript(result.steps, result.error)
    }
  }

  const passed = results.filter(r => r.passed).length
  const failed = results.length - passed
  const ran = new Set(results.map(r => r.file))
  const notRun = files.filter(f => !ran.has(f))
  for (const file of notRun) console.log(`NOT RUN ${file}: Botium read no convo from it`)
  console.log(`botium: ${results.length} convos, ${passed} passed, ${failed} failed, ${notRun.length} files not run`)
  if (args.report) {
    fs.writeFileSync(args.report, JSON.stringify({ files, results }, null, 2))
  }
  process.exitCode = failed === 0 && notRun.length === 0 && results.length > 0 ? 0 : 1
}

main().catch(err => {
  console.error(`botium: ${err.stack || err}`)
  process.exitCode = 2
})
