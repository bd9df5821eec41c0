/// The paper's image table (Massaroli et al. 2020, §4.4 "Ranking augmentation strategies"; paper-spec §7.1): a
/// convolutional Neural ODE without augmentation, with zero channels (ANODE), with a learned input layer (IL-NODE) and
/// second order (2nd-order), compared on test accuracy, forward function evaluations (NFE) and parameters.
///
/// Data: Fashion-MNIST from Debian's dataset-fashion-mnist (/usr/share/datasets/fashion-mnist), or any MNIST-format
/// IDX folder given with --data. The quick mode writes a small synthetic IDX dataset (ten classes of bars) and reads it
/// back through the library's IDX reader, so the test command exercises the whole pipeline without the download.
module Appendix.ImageAugmentation

open System
open System.IO
open TorchSharp
open type TorchSharp.torch.nn
open NeuralOde.Core
open NeuralOde.Core.Datasets
open Appendix.Experiment

let private fashionFolder = "/usr/share/datasets/fashion-mnist"

/// The folder's IDX file named `stem` (with or without .gz), or None.
let private idxFile (folder: string) (stem: string) =
    [ stem + ".gz"; stem ] |> List.map (fun f -> Path.Combine(folder, f)) |> List.tryFind File.Exists

/// Ten classes of 28 × 28 images: class c is a bright bar at column 2c + 4 (vertical for even c, horizontal as the
/// row for odd c), over faint noise. Written as IDX files to `folder`.
let private writeSynthetic (folder: string) (train: int) (test: int) (seed: uint64) =
    let random = Random(int seed)
    let make (n: int) =
        let labels = Array.init n (fun i -> byte (i % 10))
        let pixels = Array.zeroCreate<byte> (n * 28 * 28)
        for i in 0 .. n - 1 do
            let c = int labels[i]
            for r in 0 .. 27 do
                for col in 0 .. 27 do
                    let onBar = if c % 2 = 0 then col = 2 * c + 4 || col = 2 * c + 5 else r = 2 * c + 4 || r = 2 * c + 5
                    pixels[(i * 28 + r) * 28 + col] <- if onBar then byte (200 + random.Next 56) else byte (random.Next 40)
        labels, pixels
    Directory.CreateDirectory folder |> ignore
    for name, n in [ "train", train; "t10k", test ] do
        let labels, pixels = make n
        Idx.write (Path.Combine(folder, $"{name}-images-idx3-ubyte.gz")) [| n; 28; 28 |] pixels
        Idx.write (Path.Combine(folder, $"{name}-labels-idx1-ubyte.gz")) [| n |] labels

/// GroupNorm with PyTorch's initial affine parameters (weight 1, bias 0): TorchSharp 0.107.0's GroupNorm leaves them
/// uninitialised (torch.empty), which gave NaN or 10⁵-sized outputs at random.
let private groupNorm (groups: int64) (channels: int64) =
    let norm = GroupNorm(groups, channels)
    use _ = torch.no_grad()
    norm.weight.fill_(1.0f) |> ignore
    norm.bias.zero_() |> ignore
    norm

/// The shared field block on `c` channels: GroupNorm → Conv 3×3 (c → h) → Softplus → Conv 3×3 (h → h) → Softplus →
/// GroupNorm → Conv 1×1 (h → cOut), as the research code's CIFAR models.
let private fieldBlock (c: int64) (h: int64) (cOut: int64) =
    Sequential(groupNorm c c, Conv2d(c, h, 3L, padding = 1L, bias = false), Softplus(),
               Conv2d(h, h, 3L, padding = 1L, bias = false), Softplus(), groupNorm h h, Conv2d(h, cOut, 1L))

/// The readout: Conv 1×1 (c → k) → AdaptiveAvgPool(4) → Flatten → Linear(16k → 10).
let private head (c: int64) (k: int64) = Sequential(Conv2d(c, k, 1L), AdaptiveAvgPool2d([| 4L; 4L |]), Flatten(), Linear(16L * k, 10L))

type private Model = { Name: string; Classifier: Modules.Sequential; Block: NeuralOdeModel }

let run (settings: Settings) : Outcome =
    torch.manual_seed(int64 settings.Seed) |> ignore
    let dataArg = Environment.GetEnvironmentVariable "NEURALODE_IDX_DATA"
    let folder, dataset =
        if settings.Quick then
            let dir = Path.Combine(settings.Out, "synthetic-idx")
            writeSynthetic dir 480 160 settings.Seed
            dir, "synthetic bars (quick mode: 480 training / 160 test images written as IDX and read back)"
        elif not (String.IsNullOrEmpty dataArg) then dataArg, $"IDX files from {dataArg} (MNIST format)"
        else fashionFolder, "Fashion-MNIST (Debian dataset-fashion-mnist)"
    let file stem =
        match idxFile folder stem with
        | Some f -> f
        | None ->
            failwithf "no %s(.gz) in %s. Install Fashion-MNIST with `sudo apt-get install dataset-fashion-mnist` (Debian/Ubuntu), or point NEURALODE_IDX_DATA at a folder of MNIST-format IDX files." stem folder
    let load (prefix: string) (count: int) =
        use images = Idx.images (file $"{prefix}-images-idx3-ubyte") torch.float32
        use labels = Idx.labels (file $"{prefix}-labels-idx1-ubyte")
        let n = min (int64 count) images.shape[0]
        // 2 × 2 average pooling to 14 × 14: a quarter of the cost, on a CPU.
        use first = images.narrow(0L, 0L, n)
        functional.avg_pool2d(first, 2L), labels.narrow(0L, 0L, n).clone()
    // Quick mode: 4 epochs at 3e-3, so that every model learns whatever the seed (2 epochs at 1e-3 left the plain NODE
    // at 15% for seed 2; with these, seeds 1–8 gave the NODE 56–100% and the others 100%, against the 30% floor).
    let trainCount, testCount, epochs, lr = if settings.Quick then 480, 160, 4, 3e-3 else 10000, 10000, 1, 1e-3
    let trainX, trainY = load "train" trainCount
    let testX, testY = load "t10k" testCount
    use _a = trainX
    use _b = trainY
    use _c = testX
    use _d = testY
    let tol = 1e-3
    let block (field: torch.nn.Module<torch.Tensor, torch.Tensor>) =
        new NeuralOdeModel(field, Solvers.dopri5, StepControl.adaptive tol tol, [| 0.0; 1.0 |])
    let node = block (fieldBlock 1L 24L 1L)
    let anode = block (fieldBlock 8L 16L 8L)
    let ilnode = block (fieldBlock 8L 16L 8L)
    let second = block (new HigherOrderField(2, fieldBlock 8L 16L 4L))
    let models =
        [ { Name = "NODE"; Block = node; Classifier = Sequential(node, head 1L 6L) }
          { Name = "ANODE (0-aug, +7 channels)"; Block = anode; Classifier = Sequential(new ZeroAugmentation(7L, true), anode, head 8L 6L) }
          { Name = "IL-NODE"; Block = ilnode; Classifier = Sequential(new InputLayerAugmentation(Conv2d(1L, 8L, 3L, padding = 1L, bias = false)), ilnode, head 8L 6L) }
          { Name = "2nd-order"; Block = second; Classifier = Sequential(new InputLayerAugmentation(Conv2d(1L, 4L, 3L, padding = 1L, bias = false)), new ZeroAugmentation(4L, true), second, head 8L 6L) } ]
    let batch = 64L
    let batches = int ((trainX.shape[0] + batch - 1L) / batch)
    let results =
        [ for m in models do
            use opt = torch.optim.AdamW(m.Classifier.parameters(), lr, weight_decay = 5e-4)
            let bar = Progress.Bar(m.Name, epochs * batches)
            let losses = ResizeArray<float>()
            for epoch in 1 .. epochs do
                use perm = torch.randperm(trainX.shape[0])
                for b in 0 .. batches - 1 do
                    use _ = torch.NewDisposeScope()
                    let count = min batch (trainX.shape[0] - int64 b * batch)
                    let index = perm.narrow(0L, int64 b * batch, count)
                    opt.zero_grad()
                    let loss = functional.cross_entropy(m.Classifier.forward(trainX.index_select(0L, index)), trainY.index_select(0L, index))
                    let iteration = (epoch - 1) * batches + b + 1
                    FiniteGuard.backward epoch iteration m.Classifier loss
                    opt.step() |> ignore
                    FiniteGuard.parameters epoch iteration m.Classifier
                    losses.Add(Tensors.scalar loss)
                    bar.Report((epoch - 1) * batches + b + 1, Tensors.scalar loss)
            // Test accuracy, and the forward NFE per batch of 64 (the research code logs it right after a forward pass).
            use _ = torch.no_grad()
            let mutable correct = 0.0
            let mutable nfe = 0
            let testBatches = int ((testX.shape[0] + batch - 1L) / batch)
            for b in 0 .. testBatches - 1 do
                use _ = torch.NewDisposeScope()
                let count = min batch (testX.shape[0] - int64 b * batch)
                let logits = m.Classifier.forward(testX.narrow(0L, int64 b * batch, count))
                nfe <- nfe + m.Block.LastStatistics.FunctionEvaluations
                correct <- correct + Tensors.scalar (logits.argmax(1L).eq(testY.narrow(0L, int64 b * batch, count)).to_type(torch.float64).sum())
            let firstQuarter = losses |> Seq.take (max 1 (losses.Count / 4)) |> Seq.average
            let lastQuarter = losses |> Seq.skip (losses.Count - max 1 (losses.Count / 4)) |> Seq.average
            yield m, correct / float testX.shape[0], float nfe / float testBatches, firstQuarter, lastQuarter ]
    let paper = Map [ "NODE", "96.8% / 98 / 21.4K"; "ANODE (0-aug, +7 channels)", "98.9% / 71 / 20.4K"; "IL-NODE", "99.1% / 44 / 20.7K"; "2nd-order", "99.2% / 43 / 20.0K" ]
    let names = results |> List.map (fun (m, _, _, _, _) -> m.Name.Split(' ').[0]) |> Array.ofList
    let paperMnist = [| 0.968; 0.989; 0.991; 0.992 |]
    let ours = if settings.Quick then "ours, synthetic bars (quick)" elif String.IsNullOrEmpty dataArg then "ours, Fashion-MNIST (reduced)" else "ours, IDX data (reduced)"
    Figures.bars (Path.Combine(settings.Out, "images-accuracy.png")) "Test accuracy by augmentation strategy: different datasets and sizes, compare rankings only" "test accuracy"
        names [ ours, results |> List.map (fun (_, a, _, _, _) -> a) |> Array.ofList, Figures.classColors[1]
                "paper, MNIST (full size)", paperMnist, Figures.classColors[0] ]
    let trained = results |> List.forall (fun (_, _, _, first, last) -> last < first)
    let accuracyOf (name: string) = results |> List.pick (fun (m, a, _, _, _) -> if m.Name = name then Some a else None)
    let nodeAccuracy = accuracyOf "NODE"
    // Full size: the paper's ranking (every augmentation beats the plain NODE) and a floor; quick: learning at all.
    let accurate =
        if settings.Quick then results |> List.forall (fun (_, a, _, _, _) -> a >= 0.3)
        else results |> List.forall (fun (m, a, _, _, _) -> a >= 0.6 && (m.Name = "NODE" || a > nodeAccuracy))
    { Rows =
        [ yield row "dataset" dataset "MNIST and CIFAR-10"
          for m, accuracy, nfe, _, _ in results ->
            row $"{m.Name}: test accuracy / forward NFE per batch / parameters" $"{100.0 * accuracy:F1}%% / {nfe:F0} / {Tensors.parameterCount m.Classifier}" $"MNIST: {paper[m.Name]}" ]
      Figures = [ "images-accuracy.png" ]
      Notes =
        [ $"Ours on {dataset}: images average-pooled to 14 × 14, {trainX.shape[0]} training images, {epochs} epoch(s), batch 64, AdamW {lr} (weight decay 5e-4), dopri5 at {tol} by autograd, 6.5K parameters for the NODE (wider field, one channel) and about 4.7K for the others. The paper: full-size MNIST and CIFAR-10, 20 epochs, dopri5 adjoint at 1e-4, about 20K (MNIST) and 35K (CIFAR-10) parameters. Reproducing that on 2 CPU cores would take days; the rows are not comparable in size, only in ranking."
          "The paper's CIFAR-10 row: NODE 58.9% / 93 NFE, ANODE 70.8% / 169, IL-NODE 73.4% / 65, 2nd-order 72.8% / 59. Its MNIST architectures are not published; ours follow the CIFAR models with 1 input channel."
          "Fields: GroupNorm → Conv 3×3 → Softplus → Conv 3×3 → Softplus → GroupNorm → Conv 1×1; head: Conv 1×1 → AdaptiveAvgPool(4) → Linear(96 → 10). ANODE prepends 7 zero channels, IL-NODE lifts with a 3×3 convolution to 8 channels, 2nd-order lifts to 4 and prepends 4 zero (velocity) channels." ]
      Check = if settings.Quick then "the IDX pipeline reads the written files, every model's loss falls and every model reaches 30% test accuracy (ten classes: 3× chance)" else "every model's loss falls, every model reaches 60% test accuracy, and every augmented model beats the plain NODE (the paper's ranking)"
      Passed = trained && accurate }

let experiment =
    { Name = "images"
      Title = "Image table: zero, input-layer and higher-order augmentation"
      Claim = "Ranking augmentation strategies (§4.4 table): on MNIST, NODE 96.8%, ANODE 98.9%, IL-NODE 99.1%, 2nd-order 99.2% test accuracy, with fewer function evaluations for IL-NODE and 2nd-order (98, 71, 44, 43 NFE)."
      Run = run }
