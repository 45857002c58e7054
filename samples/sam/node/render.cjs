// A diagonal-stripes PNG (RGB, stored without compression), shared by this folder's handlers.
"use strict";
const zlib = require("node:zlib");

const table = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(bytes) {
  let c = 0xffffffff;
  for (const byte of bytes) c = table[(c ^ byte) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function section(kind, data) {
  const head = Buffer.alloc(4);
  head.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(kind, "latin1"), data]);
  const tail = Buffer.alloc(4);
  tail.writeUInt32BE(crc32(body));
  return Buffer.concat([head, body, tail]);
}

function stripesPNG(width, height, seed) {
  if (!(width >= 1 && width <= 8192 && height >= 1 && height <= 8192)) throw new RangeError(`width and height must be 1...8192, got ${width}x${height}`);
  const rows = Buffer.alloc(height * (1 + width * 3));
  for (let y = 0, at = 0; y < height; y++) {
    rows[at++] = 0;
    for (let x = 0; x < width; x++) {
      const band = ((x + y + seed) >> 4) & 1;
      rows[at++] = band ? 240 : 30;
      rows[at++] = (x * 255) / width;
      rows[at++] = (y * 255) / height;
    }
  }
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.set([8, 2, 0, 0, 0], 8);
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    section("IHDR", header), section("IDAT", zlib.deflateSync(rows, { level: 0 })), section("IEND", Buffer.alloc(0)),
  ]);
}

function render(params = {}) {
  return stripesPNG(Number(params.width ?? 256), Number(params.height ?? 256), Number(params.seed ?? 0));
}

module.exports = { render };
