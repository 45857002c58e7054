import Foundation

#if FUZZING
/// libFuzzer's own driver, for a program that keeps its `main` (SwiftPM names the entry point itself).
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<Int32>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: @convention(c) (UnsafePointer<UInt8>, Int) -> Int32
) -> Int32
#endif

/// The `main` of a fuzz target: built with `-DFUZZING` (by `.ci/fuzz`) it hands the command line to
/// libFuzzer with `fuzz` as the target; otherwise it replays the files named on the command line
/// through `replay`, so a plain build checks that the target compiles and a finding can be rerun.
public enum FuzzMain {
    /// Runs the fuzzer or the replay.
    public static func run(fuzz: @convention(c) (UnsafePointer<UInt8>, Int) -> Int32, replay: ([UInt8]) -> Void) throws {
        #if FUZZING
        var argc = CommandLine.argc
        var argv = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv, fuzz))
        #else
        for path in CommandLine.arguments.dropFirst() {
            replay(Array(try Data(contentsOf: URL(fileURLWithPath: path))))
        }
        #endif
    }
}
