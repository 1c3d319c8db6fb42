namespace OnnxDeconv.GraphRewrite;

/// <summary>
/// Op types, domains and attribute names in one place: rewrites and reports never spell them inline.
/// </summary>
public static class Ops
{
    /// <summary>The default ONNX domain ("" and "ai.onnx" are the same domain).</summary>
    public const string DefaultDomain = "";
    public const string OnnxDomainAlias = "ai.onnx";

    public static bool IsDefaultDomain(string? domain) => string.IsNullOrEmpty(domain) || domain == OnnxDomainAlias;

    public static class ConvTranspose
    {
        public const string OpType = "ConvTranspose";
        public const string AutoPad = "auto_pad";
        public const string Dilations = "dilations";
        public const string Group = "group";
        public const string KernelShape = "kernel_shape";
        public const string OutputPadding = "output_padding";
        public const string OutputShape = "output_shape";
        public const string Pads = "pads";
        public const string Strides = "strides";
    }

    public static class Conv
    {
        public const string OpType = "Conv";
        public const string AutoPad = "auto_pad";
        public const string Dilations = "dilations";
        public const string Group = "group";
        public const string KernelShape = "kernel_shape";
        public const string Pads = "pads";
        public const string Strides = "strides";
    }

    public static class Resize
    {
        public const string OpType = "Resize";
        public const string Mode = "mode";
        public const string CoordinateTransformationMode = "coordinate_transformation_mode";
        public const string NearestMode = "nearest_mode";
        public const string Axes = "axes";
        public const string KeepAspectRatioPolicy = "keep_aspect_ratio_policy";
        public const string ExcludeOutside = "exclude_outside";
        public const string CubicCoeffA = "cubic_coeff_a";
        public const string ExtrapolationValue = "extrapolation_value";
        public const string AntiAlias = "antialias";
    }

    public static class Upsample
    {
        public const string OpType = "Upsample";
        public const string Mode = "mode";
        public const string Scales = "scales";
    }

    public static class DepthToSpace
    {
        public const string OpType = "DepthToSpace";
        public const string BlockSize = "blocksize";
        public const string Mode = "mode";
        public const string ModeCrd = "CRD";
        public const string ModeDcr = "DCR";
    }

    public static class BatchNormalization
    {
        public const string OpType = "BatchNormalization";
        public const string Epsilon = "epsilon";
        public const string Momentum = "momentum";
        public const string TrainingMode = "training_mode";
        public const string Spatial = "spatial";
        public const string IsTest = "is_test";
    }

    public static class LeakyRelu
    {
        public const string OpType = "LeakyRelu";
        public const string Alpha = "alpha";
    }

    public static class Clip
    {
        public const string OpType = "Clip";
        public const string Min = "min";
        public const string Max = "max";
    }

    public static class Slice
    {
        public const string OpType = "Slice";
        // Slice-1 (opset < 10) takes these as attributes; from opset 10 they are inputs.
        public const string Starts = "starts";
        public const string Ends = "ends";
        public const string Axes = "axes";
    }
    /// <summary>The OnnxDeconv custom op (names defined once, in OnnxDeconv.Plugin.TransposedConvSchema).</summary>
    public static class TransposedConv
    {
        public const string Domain = OnnxDeconv.Plugin.TransposedConvSchema.Domain;
        public const string OpType = OnnxDeconv.Plugin.TransposedConvSchema.OpType;
        public const int Version = OnnxDeconv.Plugin.TransposedConvSchema.Version;
        public const string KernelShape = OnnxDeconv.Plugin.TransposedConvSchema.KernelShape;
        public const string Strides = OnnxDeconv.Plugin.TransposedConvSchema.Strides;
        public const string Dilations = OnnxDeconv.Plugin.TransposedConvSchema.Dilations;
        public const string Pads = OnnxDeconv.Plugin.TransposedConvSchema.Pads;
        public const string OutputPadding = OnnxDeconv.Plugin.TransposedConvSchema.OutputPadding;
        public const string Group = OnnxDeconv.Plugin.TransposedConvSchema.Group;
        public const string InChannels = OnnxDeconv.Plugin.TransposedConvSchema.InChannels;
        public const string OutChannels = OnnxDeconv.Plugin.TransposedConvSchema.OutChannels;
        public const string Activation = OnnxDeconv.Plugin.TransposedConvSchema.Activation;
        public const string Alpha = OnnxDeconv.Plugin.TransposedConvSchema.Alpha;
        public const string ClipMin = OnnxDeconv.Plugin.TransposedConvSchema.ClipMin;
        public const string ClipMax = OnnxDeconv.Plugin.TransposedConvSchema.ClipMax;
        public const string PackingFormat = OnnxDeconv.Plugin.TransposedConvSchema.PackingFormatAttribute;
        public const string OutputShape = OnnxDeconv.Plugin.TransposedConvSchema.OutputShape;
    }
    public static class Pad { public const string OpType = "Pad"; public const string Mode = "mode"; public const string Pads = "pads"; public const string Value = "value"; }
    public static class Reshape { public const string OpType = "Reshape"; public const string AllowZero = "allowzero"; }
    public static class Shape { public const string OpType = "Shape"; }
    public static class Gather { public const string OpType = "Gather"; public const string Axis = "axis"; }
    public static class Mul { public const string OpType = "Mul"; }
    public static class Sub { public const string OpType = "Sub"; }
    public static class Div { public const string OpType = "Div"; }
    public static class PRelu { public const string OpType = "PRelu"; }
    public static class Elu { public const string OpType = "Elu"; }
    public static class Dropout { public const string OpType = "Dropout"; }
    public static class InstanceNormalization { public const string OpType = "InstanceNormalization"; }
    public static class MaxPool { public const string OpType = "MaxPool"; public const string CeilMode = "ceil_mode"; public const string KernelShape = "kernel_shape"; public const string Strides = "strides"; }
    public static class AveragePool { public const string OpType = "AveragePool"; public const string CeilMode = "ceil_mode"; }
    public static class Transpose { public const string OpType = "Transpose"; public const string Perm = "perm"; }
    public static class Concat { public const string OpType = "Concat"; public const string Axis = "axis"; }
    public static class Unsqueeze { public const string OpType = "Unsqueeze"; public const string Axes = "axes"; }
    public static class Constant { public const string OpType = "Constant"; public const string Value = "value"; }
    public static class Relu { public const string OpType = "Relu"; }
    public static class Sigmoid { public const string OpType = "Sigmoid"; }
    public static class Tanh { public const string OpType = "Tanh"; }
    public static class Add { public const string OpType = "Add"; }
    public static class Identity { public const string OpType = "Identity"; }
    public static class ConstantOfShape { public const string OpType = "ConstantOfShape"; public const string Value = "value"; }
    public static class ConvInteger { public const string OpType = "ConvInteger"; }
    public static class QLinearConv { public const string OpType = "QLinearConv"; }
    /// <summary>QuantizeLinear(x, y_scale, y_zero_point) and DequantizeLinear(x, x_scale, x_zero_point): axis = per-channel axis.</summary>
    public static class QuantizeLinear { public const string OpType = "QuantizeLinear"; public const string Axis = "axis"; public const string Saturate = "saturate"; public const string BlockSize = "block_size"; public const string OutputDtype = "output_dtype"; }
    public static class DequantizeLinear { public const string OpType = "DequantizeLinear"; public const string Axis = "axis"; public const string BlockSize = "block_size"; }
    public static class LpPool { public const string OpType = "LpPool"; }
    public static class SpaceToDepth { public const string OpType = "SpaceToDepth"; public const string BlockSize = "blocksize"; }

    /// <summary>Attribute values (not names) that models spell: Resize modes, Pad mode.</summary>
    public static class Values
    {
        public const string Nearest = "nearest";
        public const string Asymmetric = "asymmetric";
        public const string Floor = "floor";
        public const string Constant = "constant";
        public const string NotSet = "NOTSET";
        public const string Valid = "VALID";
    }
}
