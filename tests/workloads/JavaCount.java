// JavaCount.java: a JVM (many threads of its own: GC, JIT compilers, signal dispatcher...)
// computing for a few seconds. Writes PIDFILE when it starts, prints "result N" at the end;
// the harness compares N with an uninterrupted run after dump/kill/restore mid-run.
// Usage: java -cp DIR JavaCount PIDFILE
import java.nio.file.*;

public class JavaCount {
    public static void main(String[] a) throws Exception {
        Files.writeString(Path.of(a[0] + ".tmp"), ProcessHandle.current().pid() + "\n");
        Files.move(Path.of(a[0] + ".tmp"), Path.of(a[0]), StandardCopyOption.ATOMIC_MOVE);
        long sum = 0;
        for (int i = 0; i < 60; i++) {
            for (int j = 0; j < 1000000; j++) sum += (j ^ i) % 7;
            System.out.println("step " + i + " sum " + sum);
            Thread.sleep(50);
        }
        System.out.println("result " + sum);
    }
}
