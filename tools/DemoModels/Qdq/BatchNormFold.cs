using OnnxDeconv.GraphRewrite;
using OnnxDeconv.GraphRewrite.IO;
using OnnxDeconv.GraphRewrite.Onnx;

namespace OnnxDeconv.DemoModels.Qdq;

/// <summary>
/// Folds an inference BatchNormalization into the ConvTranspose before it (the step deployment exports take before
/// quantizing): W[ic, oc, k] *= f[oc], b[oc] = (b[oc] - mean[oc]) * f[oc] + beta[oc], f = gamma / sqrt(var + eps).
/// Only group-1 ConvTransposes whose output feeds the BatchNormalization alone; anything else stays as it is.
/// </summary>
internal static class BatchNormFold
{
    public static void FoldAfterConvTranspose(ModelProto model)
    {
        var g = model.Graph;
        var inits = g.Initializer.ToDictionary(t => t.Name, StringComparer.Ordinal);
        foreach (var bn in g.Node.Where(n => n.OpType == Ops.BatchNormalization.OpType).ToList())
        {
            var ct = g.Node.FirstOrDefault(n => n.Output.Contains(bn.Input[0]));
            if (ct is null || ct.OpType != Ops.ConvTranspose.OpType || !inits.ContainsKey(ct.Input[1])) continue;
            if (ct.Attribute.Any(a => a.Name == Ops.ConvTranspose.Group && a.I != 1)) continue;
            if (g.Node.Count(n => n.Input.Contains(bn.Input[0])) != 1 || g.Output.Any(o => o.Name == bn.Input[0])) continue;
            if (bn.Input.Skip(1).Any(i => !inits.ContainsKey(i))) continue;
            float eps = bn.Attribute.FirstOrDefault(a => a.Name == Ops.BatchNormalization.Epsilon)?.F ?? 1e-5f;
            float[] gamma = Tensors.ToFloats(inits[bn.Input[1]]), beta = Tensors.ToFloats(inits[bn.Input[2]]);
            float[] mean = Tensors.ToFloats(inits[bn.Input[3]]), var = Tensors.ToFloats(inits[bn.Input[4]]);
            var wt = inits[ct.Input[1]];
            var w = Tensors.ToFloats(wt);
            long cout = wt.Dims[1], inner = wt.Dims.Skip(2).Aggregate(1L, (p, d) => p * d);
            var f = gamma.Select((v, c) => (float)(v / Math.Sqrt(var[c] + eps))).ToArray();
            for (long i = 0; i < w.Length; i++) w[i] *= f[i / inner % cout];
            float[] b = ct.Input.Count > 2 && ct.Input[2].Length > 0 ? Tensors.ToFloats(inits[ct.Input[2]]) : new float[cout];
            for (int c = 0; c < cout; c++) b[c] = (b[c] - mean[c]) * f[c] + beta[c];
            string wName = ct.Input[1], bName = wName.EndsWith(".weight", StringComparison.Ordinal) ? wName[..^".weight".Length] + ".bias" : wName + "_bias";
            Replace(g, inits, Tensors.FromFloats(wName, wt.Dims.ToArray(), w));
            if (ct.Input.Count > 2 && ct.Input[2].Length > 0) bName = ct.Input[2];
            Replace(g, inits, Tensors.FromFloats(bName, [cout], b));
            if (ct.Input.Count > 2) ct.Input[2] = bName; else ct.Input.Add(bName);
            ct.Output[0] = bn.Output[0];
            g.Node.Remove(bn);
            foreach (var i in bn.Input.Skip(1))
                if (g.Node.All(n => !n.Input.Contains(i))) { g.Initializer.Remove(inits[i]); inits.Remove(i); }
        }
    }

    private static void Replace(GraphProto g, Dictionary<string, TensorProto> inits, TensorProto t)
    {
        if (inits.TryGetValue(t.Name, out var old)) g.Initializer.Remove(old);
        g.Initializer.Add(t);
        inits[t.Name] = t;
    }
}
