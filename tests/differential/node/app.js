'use strict'
// Echo backend for the portcullis differential tests: Express + method-override.
// Reports the method after method-override (header X-HTTP-Method-Override,
// POST only: its default), req.path, req.hostname and X-Auth-Subject.

const express = require('express')
const methodOverride = require('method-override')

const NAME = 'express'
const app = express()

app.use(methodOverride('X-HTTP-Method-Override'))
app.use(methodOverride('_method')) // the query-string form of the same middleware

function safe (get, fallback) {
  try { return get() } catch (e) { return fallback }
}

function echo (req, res, err) {
  const body = {
    backend: NAME,
    method: req.method,
    path: safe(() => req.path, req.url),
    host: safe(() => req.hostname, req.headers.host) ?? null,
    user: req.get('X-Auth-Subject') ?? null,
    headers: req.headers
  }
  if (err) body.error = String(err)
  res.set('X-Diff-Backend', NAME)
  res.status(200).json(body)
}

// app.use with no path matches every method and every path.
app.use((req, res) => echo(req, res))
// Never answer with a 500 page: report even what the chain choked on.
app.use((err, req, res, next) => echo(req, res, err))

const server = app.listen(0, '127.0.0.1', (err) => {
  if (err) throw err
  process.stdout.write(`LISTENING ${server.address().port}\n`)
})
