fn main() -> std::process::ExitCode {
    kfp_ci::main()
}
