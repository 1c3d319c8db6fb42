using OnnxDeconv.Geometry;

namespace OnnxDeconv.Kernels;

/// <summary>
/// One output phase ("residue") of the polyphase decomposition. On axis a, the outputs o with
/// <c>(o + pb) mod s == r</c> form a grid <c>o = O0 + q*s</c>, q in [0, Q); with <c>m = M0 + q</c> they read
/// <c>x[m - c]</c> through the taps k with <c>k*d mod s == r</c>, <c>c = (k*d - r)/s</c>: a dense stride-1 correlation
/// over the original input. Taps are the product of the per-axis tap lists (last axis fastest).
/// </summary>
internal sealed class Residue
{
    public required int[] O0 { get; init; }
    public required int[] Q { get; init; }
    public required int[] M0 { get; init; }
    public required int[] CMin { get; init; }
    public required int[] CMax { get; init; }
    public required int Pixels { get; init; }
    public required int Taps { get; init; }
    /// <summary>[tap * rank + axis]: input offset c of the tap on that axis.</summary>
    public required int[] TapC { get; init; }
    /// <summary>Flat index of the tap in the ONNX kernel (used by packing).</summary>
    public required int[] TapK { get; init; }
    /// <summary>Per tap: sum over axes of c * input stride.</summary>
    public required int[] TapInOffset { get; init; }
    /// <summary>Offset of this residue's packed weights inside one group's block.</summary>
    public required long WeightOffset { get; init; }
}

/// <summary>
/// The s phases of the last axis that share every other residue (<see cref="DeconvPlan.FusedGroups"/>), ordered by
/// their first output position, so phase k writes lane k of each run of s outputs.
/// </summary>
internal sealed class FusedGroup
{
    public required Residue[] Phases { get; init; }
    /// <summary>The distinct input offsets, relative to a chunk's first pixel, that any tap of any phase reads.</summary>
    public required int[] Shifts { get; init; }
    /// <summary>[phase][tap]: index into <see cref="Shifts"/>.</summary>
    public required int[][] TapShift { get; init; }
    /// <summary>Per shift: input position on the last axis of a row's pixel 0 (M0 - c), for zero-padded packing.</summary>
    public required int[] ShiftLast { get; init; }
    /// <summary>[shift * (rank-1) + axis]: the tap offset c on each leading axis.</summary>
    public required int[] ShiftLead { get; init; }
    /// <summary>Each shift has one per-axis offset vector (false when two differ but alias to one flat offset).</summary>
    public required bool Paddable { get; init; }
    /// <summary>Per shift: index of its leading-axis offset vector among the distinct ones (an input row of a chunk).</summary>
    public required int[] LeadIndex { get; init; }
    /// <summary>Per distinct leading-axis offset vector: the first shift that has it.</summary>
    public required int[] LeadShift { get; init; }
    /// <summary>Smallest <see cref="ShiftLast"/>, and the spread max - min (extra columns of a zero-bordered row).</summary>
    public required int MinShiftLast { get; init; }
    public required int ShiftLastSpread { get; init; }
}

/// <summary>
/// Everything <see cref="DeconvKernel.Run"/> derives from a geometry, computed once and cached, so a call does no
/// set-up work and no allocation. The ISA only decides the pixel block width; the packed weight layout never depends on it.
/// </summary>
internal sealed class DeconvPlan
{
    /// <summary>Output channels per packed weight block (and per split unit of the pixel path's micro-kernel).</summary>
    public const int ChannelBlock = 12;
    /// <summary>
    /// Packed block width for many output channels: 3 AVX-512 vectors (6 AVX2 ones), so the channel-vectorised path
    /// (<see cref="Channel"/>) loads whole channel vectors per (ci, tap); the pixel path runs it as four 12-channel sub-blocks.
    /// </summary>
    public const int WideBlock = 48;

    /// <summary>
    /// The packed block width: wide for many output channels per group with several taps in some phase (kernel larger
    /// than the stride: a long contraction, where small images take the channel-vectorised path). One tap per phase
    /// (U-Net k2 s2) keeps 12-channel blocks: its pixel path streams them measurably faster (~3 % on 512->256 at 32x32).
    /// Depends on channels, kernel, strides and dilations only (never on the image size, pads or the ISA), so one packed
    /// tensor serves every input shape and variant.
    /// </summary>
    public static int BlockFor(ConvTransposeGeometry g) =>
        g.OutChannelsPerGroup >= 96 && PhaseDecomposition.MaxTapsOf(g) >= 2 ? WideBlock : ChannelBlock;

    public ConvTransposeGeometry Geometry { get; }
    /// <summary>The layer's polyphase decomposition; <see cref="AllResidues"/> is its kernel-side view.</summary>
    public PhaseDecomposition Phases { get; }
    public KernelIsa Isa { get; }
    /// <summary>Output channels per packed weight block (<see cref="BlockFor"/>).</summary>
    public int Block { get; }
    /// <summary>The channel-vectorised path's layout (null when the plan takes another path).</summary>
    public ChannelLayout? Channel { get; }
    public bool? ChannelOverride { get; }
    public int Rank { get; }
    public int Cig { get; }
    public int Cog { get; }
    public long InSpatial { get; }
    public long OutSpatial { get; }
    public int[] InStride { get; }
    public int[] OutStride { get; }
    public int KernelSpatial { get; }
    /// <summary>Every residue tuple in packing order (including ones with no outputs).</summary>
    public Residue[] AllResidues { get; }
    /// <summary>Residues that have outputs: the work list.</summary>
    public Residue[] Work { get; }
    public int[] WorkItemStart { get; }
    /// <summary>Pixel blocks of the largest phase: items per (image, group, channel split).</summary>
    public int MaxBlocks { get; }
    public int ItemsPerImageGroup { get; }
    public int ItemCount { get; }
    public int ItemPixels { get; }
    public int Lanes { get; }
    public int VectorsPerBlock { get; }
    public int PixelBlock { get; }
    public int ChannelSubBlock { get; }
    public int MaxTaps { get; }
    /// <summary>Reads x directly (no panel copy) on pixel runs where every tap is in range.</summary>
    public bool Direct { get; }
    public bool? DirectOverride { get; }
    /// <summary>One input channel and at most one channel block of outputs per group: the dedicated depthwise path.</summary>
    public bool Depthwise { get; }
    /// <summary>The depthwise path's layout (null when the plan takes the general path).</summary>
    public DepthwiseLayout? Dw { get; }
    public int ChannelSplits { get; }
    public int BlocksPerSplit { get; }
    /// <summary>Input channels per slice of the direct path.</summary>
    public int DirectSlice { get; }
    /// <summary>Input channels per border-panel slice.</summary>
    public int CiChunk { get; }
    public long TileFloats { get; }
    /// <summary>Floats of the per-thread panel (border gather, or a fused chunk's packed slice); the tile follows it.</summary>
    public long PanelFloats { get; }
    /// <summary>Per-thread scratch floats (the packed pixel panel plus the result tile(s); depthwise: the padded plane copy).</summary>
    public long ScratchFloats { get; }
    /// <summary>
    /// Stride of the last axis when its phases are computed together (see <see cref="FusedGroups"/>), else 1.
    /// </summary>
    public int FusedPhases { get; }
    /// <summary>
    /// The work list as groups of the last axis's s phases that share every other residue; null when not fused. A
    /// group's interior chunks are computed together: the input pixels every phase reads are copied once into a
    /// contiguous panel ([ci][shift][pixel]), each phase gets a tile from it, and the tiles are written interleaved as
    /// contiguous output runs instead of s strided passes. Needs equal grids (output length along the last axis a
    /// multiple of s) and taps in every phase.
    /// </summary>
    public FusedGroup[]? FusedGroups { get; }
    /// <summary>Whole rows per fused chunk (1: chunks inside one row).</summary>
    public int FusedRows { get; }
    /// <summary>Input channels per packed slice of a fused chunk (the panel holds slice x shifts x pixel block).</summary>
    public int PackSlice { get; }
    /// <summary>
    /// Every pixel of every fused group is computed from zero-padded packed chunks (no per-pixel border gathers): a chunk
    /// is <see cref="PadRows"/> whole rows, or (rows longer than the block) <see cref="PadLen"/> pixels of one row.
    /// </summary>
    public bool Padded { get; }
    public int PadRows { get; }
    /// <summary>Pixels of a row per padded chunk segment (the row length, or the block when rows are longer).</summary>
    public int PadLen { get; }
    /// <summary>
    /// Padded chunks of one block of one row: each input channel's rows (one per distinct leading-axis tap offset) are
    /// copied once with their zero borders, [ci][row][block + spread], and every shift reads an offset into them, instead
    /// of a copy per shift (DCGAN k4 s2 p1: 2 rows of 34 instead of 6 shifts of 32).
    /// </summary>
    public bool RowPanel { get; }

    public DeconvPlan(ConvTransposeGeometry g, KernelIsa isa, bool? direct = null, bool? channel = null)
    {
        Geometry = g;
        Isa = isa;
        Block = BlockFor(g);
        Rank = g.Rank;
        Cig = checked((int)g.InChannelsPerGroup);
        Cog = checked((int)g.OutChannelsPerGroup);
        InSpatial = g.Axes.Aggregate(1L, (p, a) => checked(p * a.Input));
        OutSpatial = g.Axes.Aggregate(1L, (p, a) => checked(p * a.Output));
        if (InSpatial > int.MaxValue || OutSpatial > int.MaxValue)
            throw new ArgumentException("spatial size per channel exceeds 2^31 elements");
        KernelSpatial = checked((int)g.Axes.Aggregate(1L, (p, a) => checked(p * a.Kernel)));
        int r = Rank;
        InStride = new int[r];
        OutStride = new int[r];
        int si = 1, so = 1;
        for (int a = r - 1; a >= 0; a--)
        {
            InStride[a] = si; si *= (int)g.Axes[a].Input;
            OutStride[a] = so; so *= (int)g.Axes[a].Output;
        }

        Phases = new PhaseDecomposition(g);
        AllResidues = BuildResidues(Phases, InStride, Cig, Cog);
        Work = AllResidues.Where(res => res.Pixels > 0).ToArray();
        MaxTaps = Math.Max(1, AllResidues.Max(res => res.Taps));

        Lanes = isa switch
        {
            KernelIsa.Avx512 => Avx512Ops.Lanes,
            KernelIsa.Avx2 => Avx2Ops.Lanes,
            KernelIsa.Vector => VectorOps.Lanes,
            _ => ScalarOps.Lanes,
        };
        // Accumulator budget: 24 of AVX-512's 32 registers, 12 of AVX2's 16 (plus the x vectors and one broadcast).
        // Few output channels -> wider pixel runs instead.
        (int nr, int mr) = isa switch
        {
            KernelIsa.Avx512 => Cog <= 4 ? (4, 4) : (2, 12),
            KernelIsa.Scalar => (4, 6),
            _ => Cog <= 4 ? (3, 4) : (2, 6),
        };
        int maxPixels = Work.Length == 0 ? 1 : Work.Max(res => res.Pixels);
        nr = Math.Max(1, Math.Min(nr, (maxPixels + Lanes - 1) / Lanes));
        // Direct reads save the panel copy, which only amortises over many output channels; with >= 128 of them the
        // contiguous panel wins (direct reads walk input planes whose stride aliases in L1). Measured on the layer suite.
        DirectOverride = direct;
        Direct = direct ?? Cog < 128;
        // Fused last-axis phases (see FusedGroups) work in chunks of one pixel block inside the part of a row where
        // every tap of every phase is in range: with a shorter interior (3D 16^3 on AVX-512: 16 pixels, 32-pixel
        // blocks) use fewer vectors per block (measured: 3D 64->32 k2 s2 1.9 -> 1.45 ms); with less than one vector
        // (DCGAN 8x8, 16x16 with k4 p1) fusion would only shrink the panel's blocks (measured 13-18 % slower): off.
        // Depthwise keeps a zero-padded copy of one input plane per thread; taken only while that stays within the
        // output (the workspace target, as for the general path's panel); its per-row term tables are bounded like the
        // packed weights (a few MB at most).
        if (Cig == 1 && Cog <= ChannelBlock && direct != false && channel != true && Work.Length > 0 && DepthwiseLayout.TableInts(g) <= 1 << 22)
        {
            var dw = new DepthwiseLayout(g, Phases, AllResidues, Cog, Lanes);
            if (dw.ScratchFloats <= g.Batch * g.OutChannels * OutSpatial) Dw = dw;
        }
        var fused = Dw is not null ? null : BuildFusedGroups(g, Work);
        int interior = fused is null ? 0 : fused.Min(fg => InteriorLength(g, fg));
        // Rows that are interior from end to end, and that every tap on the other axes always reads inside (k == s,
        // no pads): a block can span several whole rows, packed side by side (3D 16^3 on AVX-512: two 16-pixel rows
        // per 32-pixel block instead of one-vector blocks, whose loop is bound by the weight broadcasts).
        int qRow = fused is null ? 0 : fused[0].Phases[0].Q[r - 1];
        int fusedRows = 1, fusedNr = nr;
        // Few output channels (DCGAN 64->3: 3 of a 4-channel tile, 1-pixel borders on every 32-pixel row) or rows with
        // less than a vector of interior: the border pixels' per-pixel gathers and the short one-vector chunks cost more
        // than the MACs, so pack every chunk with its zero padding and run all pixels through the fused micro-kernel
        // (measured 64->3: 0.56 -> 0.12 ms). Not for rows under half a vector (DCGAN 4x4: 0.49 -> 0.70 ms, the packed
        // slices get too thin for 512 input channels and the tiles of 256 channels go round trip per slice).
        bool padded = fused is not null && fused.All(fg => fg.Paddable) && (Cog <= 4 || (interior < Lanes && 2 * qRow >= Lanes));
        if (padded)
        {
            // Blocks that tile rows exactly (whole rows per block, or whole blocks per row): no overlapping chunk.
            for (int c = nr; c >= 1; c--)
                if (c * Lanes % qRow == 0 || qRow % (c * Lanes) == 0) { nr = c; break; }
            // Row panels need chunks of one block of one row: prefer whole blocks per row when the rows fit.
            if (nr * Lanes > qRow)
                for (int c = nr; c >= 1; c--)
                    if (qRow % (c * Lanes) == 0)
                    {
                        if (fused!.All(fg => (long)fg.LeadShift.Length * (c * Lanes + fg.ShiftLastSpread) <= (long)fg.Shifts.Length * c * Lanes)) nr = c;
                        break;
                    }
        }
        else if (fused is not null && interior == qRow && qRow % Lanes == 0 && nr * Lanes > qRow && nr * Lanes % qRow == 0
            && fused.All(fg => LeadingAxesAlwaysInside(g, fg)))
            fusedRows = nr * Lanes / qRow;
        else if (fused is not null && interior >= Lanes) fusedNr = Math.Min(nr, interior / Lanes);
        else fused = null;
        // The s tiles (one per phase, every channel's partial sums at worst) stay within 64 KB: 1D 512->256 k16 s8
        // would keep 8 x 32 KB of tiles (measured ~10 % slower fused).
        if (fused is not null && (long)g.Axes[r - 1].Stride * Math.Max(Cog, mr) * fusedNr * Lanes > 16384) fused = null;
        if (fused is null) padded = false;
        if (fused is not null && !padded)
        {
            nr = fusedNr;
            FusedRows = fusedRows;
        }
        else FusedRows = 1;
        VectorsPerBlock = nr;
        ChannelSubBlock = mr;
        PixelBlock = nr * Lanes;

        Depthwise = Dw is not null;
        long macsPerPanel = (long)PixelBlock * Cig * MaxTaps * Cog;
        int panels = Work.Length == 0 ? 0 : Work.Max(res => (res.Pixels + PixelBlock - 1) / PixelBlock);
        long images = g.Batch * g.Group;
        // Items big enough to hide scheduling cost (~256K MACs), small enough to leave >= 8 items to balance.
        int unit = PixelBlock;
        if (padded)
        {
            // Padded chunks never cross an item: items are whole chunks of rows (or whole rows when rows are longer).
            PadRows = qRow <= PixelBlock ? PixelBlock / qRow : 1;
            PadLen = Math.Min(qRow, PixelBlock);
            unit = PadRows * qRow;
            panels = Work.Max(res => (res.Pixels + unit - 1) / unit);
            macsPerPanel = (long)unit * Cig * MaxTaps * Cog;
        }
        Padded = padded;
        int perItem = (int)Math.Clamp((262144 + macsPerPanel - 1) / Math.Max(1, macsPerPanel), 1, 1 << 20);
        while (perItem > 1 && images * DivUp(panels, perItem) < 8) perItem /= 2;
        ItemPixels = perItem * unit;
        WorkItemStart = new int[Work.Length + 1];
        for (int i = 0; i < Work.Length; i++)
            WorkItemStart[i + 1] = WorkItemStart[i] + DivUp(Work[i].Pixels, ItemPixels);
        // A single pixel item (small images, e.g. DCGAN's 4x4 layer) would leave a second thread idle: split the output
        // channels in two, in whole blocks. Not more: each split re-packs the same border panel.
        int blocks = (Cog + Block - 1) / Block;
        // Items are block-major: item b computes pixel block b of every phase, so the phases that interleave into the
        // same output lines write them while they are still in cache (phase-major order wrote each line twice from memory).
        MaxBlocks = Work.Length == 0 ? 0 : Work.Max(res => DivUp(res.Pixels, ItemPixels));
        int pixelItems = (int)Math.Min(int.MaxValue, images * MaxBlocks);
        ChannelSplits = Depthwise || pixelItems == 0 ? 1 : Math.Clamp(2 / pixelItems, 1, blocks);
        BlocksPerSplit = DivUp(blocks, ChannelSplits);
        ChannelSplits = DivUp(blocks, BlocksPerSplit);
        // Depthwise items are whole channels; otherwise (pixel range of a phase) x (channel range).
        ItemsPerImageGroup = Depthwise ? (Work.Length == 0 ? 0 : 1) : MaxBlocks * ChannelSplits;
        ItemCount = checked((int)(images * ItemsPerImageGroup));
        // The border panel holds a slice of input channels small enough that panel + tile stay within 64 KB and
        // within the output's size (the workspace target); with several slices the tile keeps every channel's partial sums.
        long outputFloats = g.Batch * g.OutChannels * OutSpatial;
        long perCi = (long)MaxTaps * PixelBlock;
        long budget = Math.Min(16384, outputFloats);
        CiChunk = Cig;
        if (Cig * perCi + (long)ChannelSubBlock * PixelBlock > budget)
            CiChunk = (int)Math.Clamp((budget - (long)Cog * PixelBlock) / perCi, 1, Cig);
        // Direct reads walk one input plane per channel at a stride that is often a multiple of 4 KB, so the lines of
        // many channels compete for the same few cache sets; a slice of 16 channels stays cached while every output
        // channel block consumes it (partial sums wait in the tile).
        // With a single channel block there is nothing to share the slice with: take all channels in one pass.
        DirectSlice = Cog <= ChannelSubBlock ? Cig : Math.Min(Cig, 16);
        TileFloats = CiChunk == Cig && DirectSlice == Cig ? (long)ChannelSubBlock * PixelBlock : (long)Cog * PixelBlock;
        FusedGroups = fused;
        if (FusedGroups is not null)
        {
            // The packed slice reuses the border panel's memory; the tile keeps every channel's partial sums when
            // the contraction takes more than one slice. One tile per phase, only while the workspace stays within
            // the output's size.
            int shifts = FusedGroups.Max(fg => fg.Shifts.Length);
            PackSlice = (int)Math.Clamp(CiChunk * (long)MaxTaps / shifts, 1, Cig);
            long tile = PackSlice == Cig && CiChunk == Cig ? (long)ChannelSubBlock * PixelBlock : (long)Cog * PixelBlock;
            long panel = Math.Max(CiChunk * perCi, (long)PackSlice * shifts * PixelBlock);
            if (Padded)
            {
                // No border panel: the packed slice takes what the s tiles (at most max(sub-block, Cog) rows each) leave of the budget.
                long sTiles = g.Axes[r - 1].Stride * (long)Math.Max(Cog, ChannelSubBlock) * PixelBlock;
                PackSlice = (int)Math.Clamp((budget - sTiles) / ((long)shifts * PixelBlock), 1, Cig);
                tile = PackSlice == Cig ? (long)ChannelSubBlock * PixelBlock : (long)Cog * PixelBlock;
                panel = (long)PackSlice * shifts * PixelBlock;
            }
            long s = g.Axes[r - 1].Stride;
            if (panel + Math.Max(TileFloats, tile) * s <= outputFloats)
            {
                TileFloats = Math.Max(TileFloats, tile);
                PanelFloats = panel;
            }
            else
            {
                FusedGroups = null;
                Padded = false;
            }
        }
        if (FusedGroups is null) PanelFloats = CiChunk * perCi;
        // The rows must hold no more than the shifts' copies (the panel is sized for those).
        RowPanel = Padded && PadRows == 1 && PadLen == PixelBlock
            && FusedGroups!.All(fg => (long)fg.LeadShift.Length * (PixelBlock + fg.ShiftLastSpread) <= (long)fg.Shifts.Length * PixelBlock);
        FusedPhases = FusedGroups is null ? 1 : (int)g.Axes[r - 1].Stride;
        ScratchFloats = Dw is not null ? Dw.ScratchFloats : PanelFloats + TileFloats * FusedPhases;

        // Many output channels and a long contraction (wide packed blocks: >= 96 channels, several taps per phase):
        // vectorise over output channels, broadcast inputs. With few pixels per phase (DCGAN 512->256 at 4x4: 16
        // pixels, K = 2048; 1D 512->256 k16 s8 len 32: 32 pixels) pixel vectors would be few and partly empty; with
        // large images it still beats the pixel path's border panels (measured 512->256 k4 s2 at 16x16: 11.7 -> 6.5 ms,
        // 256->128 at 64x64: 44 -> 32 ms, 128->128 k3 s1 at 32x32: 3.0 -> 2.0 ms). One tap per phase (U-Net k2 s2) keeps
        // the pixel path's 12-channel blocks (its direct reads win there: 512->256 at 32x32 6.2 vs 9.7 ms).
        ChannelOverride = channel;
        if (channel != false && Work.Length > 0 && (channel == true || Dw is null))
        {
            // Its tables (output offsets per pixel, gather runs per tap and piece) are bounded like the depthwise path's.
            long tableInts = Work.Sum(res => (res.Pixels + 8L) * (1 + res.Taps));
            bool fits = Block == WideBlock && (long)Cig * MaxTaps >= 256 && tableInts <= 1 << 22;
            if (channel == true || fits)
            {
                int units = Work.Sum(res => Math.Max(1, DivUp(res.Pixels, ChannelLayout.UnitPixels)));
                // Whole phases as items: the phases that interleave into the same output lines would be written by
                // both threads at once (each item ends in the same store phase), so items split the channels in two
                // instead (other rows, other lines); measured 1D k16 s8 at 2 threads. Units of larger images are
                // separate pixel ranges already.
                int splits = units == Work.Length ? Math.Min(2, blocks) : 1;
                int perSplit = DivUp(blocks, splits);
                var cl = new ChannelLayout(g, Work, InStride, OutStride, Cig, Math.Min(Cog, perSplit * Block), isa);
                if (channel == true || cl.PanelFloats + cl.TileFloats <= outputFloats)
                {
                    Channel = cl;
                    BlocksPerSplit = perSplit;
                    ChannelSplits = DivUp(blocks, perSplit);
                    ItemsPerImageGroup = cl.UnitPhase.Length * ChannelSplits;
                    ItemCount = checked((int)(images * ItemsPerImageGroup));
                    ScratchFloats = cl.PanelFloats + cl.TileFloats;
                }
            }
        }
        // The phase-GEMM path where the walk above loses most (see PhaseGemmLayout.TryCreate); only under the heuristic,
        // so forcing direct reads or the channel path still tests those.
        if (direct is null && channel is null && Dw is null
            && PhaseGemmLayout.TryCreate(g, AllResidues, OutStride, Cig, Cog, isa, Lanes) is { } gemm)
        {
            Gemm = gemm;
            Channel = null;
            ItemsPerImageGroup = gemm.ItemsPerImageGroup;
            ItemCount = checked((int)(images * ItemsPerImageGroup));
            ScratchFloats = gemm.ScratchFloats;
        }
        // A one-pixel input (a generator's z layer): the whole layer is one GEMM over the packed weight read in place,
        // every image at once (DCGAN 100->1024 k4 s1 on 1x1, kernel in-process, 1 thread: batch 8 4.3 -> 0.97 ms, batch 1 0.60 -> 0.43 ms).
        if (direct is null && channel is null && Dw is null
            && OnePixelLayout.TryCreate(g, AllResidues, OutStride, Cig, Cog, Block, isa, Lanes) is { } one)
        {
            OnePixel = one;
            Gemm = null;
            Channel = null;
            ItemsPerImageGroup = one.Units.Length;
            ItemCount = checked((int)(g.Group * ItemsPerImageGroup));
            ScratchFloats = one.ScratchFloats;
        }
    }

    /// <summary>The phase-GEMM path's layout (null when the plan takes another path).</summary>
    public PhaseGemmLayout? Gemm { get; }

    /// <summary>The one-pixel-input GEMM path's layout (null when the plan takes another path).</summary>
    public OnePixelLayout? OnePixel { get; }

    private readonly Stack<DeconvJob> _jobs = new();

    public DeconvJob RentJob()
    {
        lock (_jobs)
        {
            if (_jobs.TryPop(out var job)) return job;
        }
        var created = DeconvJob.Create(Isa, this);
        created.Plan = this;
        return created;
    }

    public void ReturnJob(DeconvJob job)
    {
        lock (_jobs) _jobs.Push(job);
    }

    private static int DivUp(int a, int b) => (a + b - 1) / b;

    /// <summary>The kernel's view of every phase combination: int offsets into one image's input and packed weights.</summary>
    private static Residue[] BuildResidues(PhaseDecomposition phases, int[] inStride, int cig, int cog)
    {
        var g = phases.Geometry;
        int r = g.Rank;
        var list = new Residue[phases.PhaseCount];
        long weightOffset = 0;
        foreach (var combo in phases.Combinations)
        {
            int taps = checked((int)combo.Taps);
            var tapC = new int[taps * r];
            var tapK = new int[taps];
            var tapIn = new int[taps];
            for (int t = 0; t < taps; t++)
            {
                int inOff = 0;
                for (int a = 0; a < r; a++)
                {
                    int c = checked((int)combo.Tap(t, a).Offset);
                    tapC[t * r + a] = c;
                    inOff += c * inStride[a];
                }
                tapK[t] = checked((int)combo.KernelIndex(t, g.Axes));
                tapIn[t] = inOff;
            }
            var ax = combo.Axes;
            list[combo.Index] = new Residue
            {
                O0 = ax.Select(p => checked((int)p.FirstOutput)).ToArray(),
                Q = ax.Select(p => checked((int)p.Count)).ToArray(),
                M0 = ax.Select(p => checked((int)p.FirstInput)).ToArray(),
                CMin = ax.Select(p => checked((int)p.MinOffset)).ToArray(),
                CMax = ax.Select(p => checked((int)p.MaxOffset)).ToArray(),
                Pixels = checked((int)combo.Pixels),
                Taps = taps,
                TapC = tapC,
                TapK = tapK,
                TapInOffset = tapIn,
                WeightOffset = weightOffset,
            };
            weightOffset += (long)taps * cig * cog;
        }
        return list;
    }

    private static FusedGroup[]? BuildFusedGroups(ConvTransposeGeometry g, Residue[] work)
    {
        int last = g.Rank - 1;
        var ax = g.Axes[last];
        int s = (int)ax.Stride;
        if (s < 2 || ax.Output % s != 0 || work.Length == 0 || work.Length % s != 0) return null;
        var groups = new FusedGroup[work.Length / s];
        for (int gi = 0; gi < groups.Length; gi++)
        {
            // Work keeps the packing order (last axis fastest), so a group's phases are consecutive.
            var grp = work.Skip(gi * s).Take(s).OrderBy(res => res.O0[last]).ToArray();
            for (int k = 0; k < s; k++)
            {
                var res = grp[k];
                if (res.Taps == 0 || res.O0[last] != k || res.Pixels != grp[0].Pixels || res.Q[last] != grp[0].Q[last]) return null;
                for (int a = 0; a < last; a++)
                    if (res.O0[a] != grp[0].O0[a] || res.Q[a] != grp[0].Q[a] || res.M0[a] != grp[0].M0[a]
                        || res.CMin[a] != grp[0].CMin[a] || res.CMax[a] != grp[0].CMax[a]) return null;
            }
            var shifts = new List<int>();
            var shiftLast = new List<int>();
            var shiftLead = new List<int>();
            bool paddable = true;
            var tapShift = new int[s][];
            for (int k = 0; k < s; k++)
            {
                tapShift[k] = new int[grp[k].Taps];
                for (int t = 0; t < grp[k].Taps; t++)
                {
                    int d = grp[k].M0[last] - grp[k].TapInOffset[t];
                    int lastPos = grp[k].M0[last] - grp[k].TapC[t * g.Rank + last];
                    int idx = shifts.IndexOf(d);
                    if (idx < 0)
                    {
                        idx = shifts.Count;
                        shifts.Add(d);
                        shiftLast.Add(lastPos);
                        for (int a = 0; a < last; a++) shiftLead.Add(grp[k].TapC[t * g.Rank + a]);
                    }
                    else
                    {
                        if (shiftLast[idx] != lastPos) paddable = false;
                        for (int a = 0; a < last; a++)
                            if (shiftLead[idx * last + a] != grp[k].TapC[t * g.Rank + a]) paddable = false;
                    }
                    tapShift[k][t] = idx;
                }
            }
            var leadIndex = new int[shifts.Count];
            var leadShift = new List<int>();
            for (int d = 0; d < shifts.Count; d++)
            {
                int u = leadShift.FindIndex(e => shiftLead.Skip(e * last).Take(last).SequenceEqual(shiftLead.Skip(d * last).Take(last)));
                if (u < 0)
                {
                    u = leadShift.Count;
                    leadShift.Add(d);
                }
                leadIndex[d] = u;
            }
            groups[gi] = new FusedGroup
            {
                Phases = grp, Shifts = shifts.ToArray(), TapShift = tapShift,
                ShiftLast = shiftLast.ToArray(), ShiftLead = shiftLead.ToArray(), Paddable = paddable,
                LeadIndex = leadIndex, LeadShift = leadShift.ToArray(),
                MinShiftLast = shiftLast.Min(), ShiftLastSpread = shiftLast.Max() - shiftLast.Min(),
            };
        }
        return groups;
    }

    /// <summary>Every tap of every phase reads inside the input on every axis but the last, for every row.</summary>
    private static bool LeadingAxesAlwaysInside(ConvTransposeGeometry g, FusedGroup fg)
    {
        var res = fg.Phases[0];
        for (int a = 0; a < g.Rank - 1; a++)
            if (res.M0[a] - res.CMax[a] < 0 || res.M0[a] + res.Q[a] - 1 - res.CMin[a] >= g.Axes[a].Input) return false;
        return true;
    }

    /// <summary>Pixels of a row where every tap of every phase of the group reads inside the input.</summary>
    private static int InteriorLength(ConvTransposeGeometry g, FusedGroup fg)
    {
        int last = g.Rank - 1, lo = 0, hi = fg.Phases[0].Q[last];
        foreach (var res in fg.Phases)
        {
            lo = Math.Max(lo, res.CMax[last] - res.M0[last]);
            hi = Math.Min(hi, (int)g.Axes[last].Input + res.CMin[last] - res.M0[last]);
        }
        return Math.Max(0, hi - lo);
    }


    /// <summary>True when <paramref name="g"/> describes the same computation this plan was built for.</summary>
    public bool Matches(ConvTransposeGeometry g)
    {
        var h = Geometry;
        if (ReferenceEquals(g, h)) return true;
        if (g.Batch != h.Batch || g.InChannels != h.InChannels || g.OutChannels != h.OutChannels || g.Group != h.Group
            || g.Axes.Length != h.Axes.Length) return false;
        for (int a = 0; a < g.Axes.Length; a++)
            if (!g.Axes[a].Equals(h.Axes[a])) return false;
        return true;
    }
}
