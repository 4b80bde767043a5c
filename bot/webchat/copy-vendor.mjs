// Copy the prebuilt browser files of the npm dependencies into public/vendor/,
// the folder the Rasa server serves at /webhooks/webchat/ (no bundler, no CDN).
// Run by `npm ci` (postinstall).
import { copyFileSync, mkdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const vendor = join(here, "public", "vendor");
const files = {
  // An ES module that defines <deep-chat> and has no imports of its own.
  "deep-chat.js": "node_modules/deep-chat/dist/deepChat.bundle.js",
  "socket.io.esm.min.js": "node_modules/socket.io-client/dist/socket.io.esm.min.js",
};

rmSync(vendor, { recursive: true, force: true });
mkdirSync(vendor, { recursive: true });
for (const [name, source] of Object.entries(files)) {
  copyFileSync(join(here, source), join(vendor, name));
}
console.log(`webchat: copied ${Object.keys(files).join(", ")} to public/vendor/`);
