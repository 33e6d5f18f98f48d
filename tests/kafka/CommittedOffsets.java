// Prints a consumer group's committed offsets next to each partition's log end
// offset, straight from the broker with the Kafka AdminClient, so tests can
// check commits independently of relay's own librdkafka code. Run as a
// single-file source program, usually through tests/kafka/committed-offsets.sh:
//
//   java -cp 'WORKDIR/libs/*' tests/kafka/CommittedOffsets.java BOOTSTRAP GROUP
//
// stdout: one line per partition with a committed offset, sorted by topic then
// partition, no header:
//   TOPIC PARTITION COMMITTED_OFFSET LOG_END_OFFSET
// LOG_END_OFFSET is OffsetSpec.latest() with read_uncommitted isolation (the
// high watermark, which includes transaction markers). A partition listed by
// the broker without an offset prints -1 as COMMITTED_OFFSET. A group with no
// commits (or that does not exist) prints nothing. Exit 0 ok, 1 error, 2 usage.

import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.ListOffsetsResult.ListOffsetsResultInfo;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;

public class CommittedOffsets {
    public static void main(String[] args) throws Exception {
        if (args.length != 2) {
            System.err.println("usage: CommittedOffsets BOOTSTRAP GROUP");
            System.exit(2);
        }
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
        p.put(AdminClientConfig.CLIENT_ID_CONFIG, "relay-committed-offsets");
        p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "10000");
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "30000");

        try (Admin admin = Admin.create(p)) {
            Map<TopicPartition, OffsetAndMetadata> committed =
                admin.listConsumerGroupOffsets(args[1]).partitionsToOffsetAndMetadata().get();
            List<TopicPartition> tps = new ArrayList<>(committed.keySet());
            tps.sort(Comparator.comparing(TopicPartition::topic).thenComparingInt(TopicPartition::partition));

            Map<TopicPartition, OffsetSpec> req = new HashMap<>();
            for (TopicPartition tp : tps) req.put(tp, OffsetSpec.latest());
            Map<TopicPartition, ListOffsetsResultInfo> ends =
                req.isEmpty() ? Map.of() : admin.listOffsets(req).all().get();

            StringBuilder out = new StringBuilder();
            for (TopicPartition tp : tps) {
                OffsetAndMetadata om = committed.get(tp);
                out.append(tp.topic()).append(' ').append(tp.partition()).append(' ')
                   .append(om == null ? -1 : om.offset()).append(' ')
                   .append(ends.get(tp).offset()).append('\n');
            }
            System.out.print(out);
            System.out.flush();
        } catch (java.util.concurrent.ExecutionException e) {
            System.err.println("CommittedOffsets: " + e.getCause());
            System.exit(1);
        }
    }
}
