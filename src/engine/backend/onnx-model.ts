import { createRequire } from 'node:module';
import type { onnx as OnnxTypes } from 'onnx-proto';
import { ONNX_DTYPE, type DType } from '../dtype.js';
import type { Attr, GraphSpec, OnnxNode, RawTensor } from './backend.js';

// protobufjs and the ONNX schema are loaded at the first graph (about 0.1 s of startup otherwise).
const require = createRequire(import.meta.url);
let proto: typeof OnnxTypes | undefined;
function onnx(): typeof OnnxTypes {
  return (proto ??= (require('onnx-proto') as { onnx: typeof OnnxTypes }).onnx);
}

/** Opset 21 has Gelu(approximate), LayerNormalization and the int64 Slice/Reshape inputs we use. */
export const OPSET = 21;

function tensorProto(name: string, t: RawTensor): OnnxTypes.ITensorProto {
  const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  return { name, dims: t.shape, dataType: ONNX_DTYPE[t.dtype], rawData: bytes };
}

function attrProto(name: string, a: Attr): OnnxTypes.IAttributeProto {
  const AttrType = onnx().AttributeProto.AttributeType;
  if ('i' in a) return { name, type: AttrType.INT, i: a.i };
  if ('f' in a) return { name, type: AttrType.FLOAT, f: a.f };
  if ('ints' in a) return { name, type: AttrType.INTS, ints: a.ints };
  if ('floats' in a) return { name, type: AttrType.FLOATS, floats: a.floats };
  if ('s' in a) return { name, type: AttrType.STRING, s: new TextEncoder().encode(a.s) };
  return { name, type: AttrType.TENSOR, t: tensorProto(name, a.t) };
}

function nodeProto(n: OnnxNode, index: number): OnnxTypes.INodeProto {
  return {
    name: `n${index}`,
    opType: n.op,
    domain: n.domain ?? '',
    input: n.inputs,
    output: n.outputs,
    attribute: Object.entries(n.attrs ?? {}).map(([k, v]) => attrProto(k, v)),
  };
}

function valueInfo(name: string, dtype: DType, shape?: number[]): OnnxTypes.IValueInfoProto {
  const tensorType: OnnxTypes.TypeProto.ITensor = { elemType: ONNX_DTYPE[dtype] };
  if (shape) tensorType.shape = { dim: shape.map((d) => ({ dimValue: d })) };
  return { name, type: { tensorType } };
}

/** Serialises a graph to ONNX ModelProto bytes. Output types are left to ORT's type inference. */
export function encodeModel(g: GraphSpec): Uint8Array {
  const model = onnx().ModelProto.create({
    irVersion: 10,
    producerName: 'sonde',
    opsetImport: [
      { domain: '', version: OPSET },
      { domain: 'com.microsoft', version: 1 },
    ],
    graph: {
      name: 'sonde',
      node: g.nodes.map(nodeProto),
      input: g.inputs.map((v) => valueInfo(v.name, v.dtype, v.shape)),
      output: g.outputs.map((name) => ({ name })),
      initializer: g.initializers.map(({ name, tensor }) => tensorProto(name, tensor)),
    },
  });
  return onnx().ModelProto.encode(model).finish();
}
