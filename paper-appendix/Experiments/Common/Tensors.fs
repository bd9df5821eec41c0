/// Small conversions between tensors and arrays for figures and tables.
module Appendix.Tensors

open TorchSharp

/// The values of a tensor as float64, row-major.
let values (t: torch.Tensor) =
    use d = t.detach()
    use c = d.cpu()
    use f = c.to_type(torch.float64)
    use contiguous = f.contiguous()
    contiguous.data<float>().ToArray()

/// A scalar tensor's value.
let scalar (t: torch.Tensor) = (values t)[0]

/// The number of trainable parameters of a module.
let parameterCount (m: torch.nn.Module) = m.parameters() |> Seq.sumBy (fun p -> p.numel())

/// Points a, a + h, ..., b (n of them).
let linspace (a: float) (b: float) (n: int) = Array.init n (fun i -> a + (b - a) * float i / float (n - 1))
