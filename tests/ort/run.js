// Runs an ONNX model in onnxruntime-node (the independent reference for `bnni export`, tests/test_export.c):
//   node tests/ort/run.js MODEL.onnx INPUT.f32 N C H W OUTPUT.f32
// INPUT.f32 holds N*C*H*W little-endian float32 values (pixels scaled to [0, 1]); the model's `logits` output is
// written to OUTPUT.f32 the same way. onnxruntime-node is installed into tests/ort/node_modules by `make deps`.
'use strict';
const fs = require('fs');
const ort = require('onnxruntime-node');

async function main() {
    const [model, input, n, c, h, w, output] = process.argv.slice(2);
    const dims = [n, c, h, w].map(Number);
    const bytes = fs.readFileSync(input);
    const x = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4);
    if (x.length !== dims.reduce((a, b) => a * b, 1))
        throw new Error(`${input}: ${x.length} values, expected ${dims.join('x')}`);
    const session = await ort.InferenceSession.create(model, {intraOpNumThreads: 1, interOpNumThreads: 1});
    const result = await session.run({input: new ort.Tensor('float32', x, dims)});
    const y = result.logits;
    fs.writeFileSync(output, Buffer.from(y.data.buffer, y.data.byteOffset, y.data.length * 4));
    console.log(`${model}: ${y.dims.join('x')} logits`);
}

main().catch((e) => {
    console.error(`ort: ${e.message}`);
    process.exit(1);
});
