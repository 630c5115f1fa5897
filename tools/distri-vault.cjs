#!/usr/bin/env node
// `npx distri-vault …`: runs the CLI bundle (dist/apps/cli/main.js), building it first when missing.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');

const main = path.join(__dirname, '../dist/apps/cli/main.js');
if (!fs.existsSync(main)) execFileSync(process.execPath, [path.join(__dirname, 'build.mjs'), 'cli', '--quiet'], { stdio: 'inherit' });
require(main)
  .run(process.argv)
  .then((code) => {
    process.exitCode = code;
  });
