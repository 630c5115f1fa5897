// System tests run the real bundles: build them first (esbuild, well under a second).
const { execFileSync } = require('node:child_process');
const path = require('node:path');
module.exports = async () => {
  execFileSync(process.execPath, [path.join(__dirname, '../tools/build.mjs'), '--quiet'], { stdio: 'inherit' });
};
