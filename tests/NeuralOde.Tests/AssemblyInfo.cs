// One test at a time: TorchSharp 0.107's tensor–number operators (x * 0.5, a + b) pass a temporary Scalar that a
// garbage collection started by another thread can free while libtorch reads it (README, Troubleshooting). With
// test classes in parallel, another thread allocates while one is inside libtorch.
[assembly: Xunit.CollectionBehavior(DisableTestParallelization = true)]
