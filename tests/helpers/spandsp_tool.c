/*
 * spandsp_tool: drives libspandsp's generators and receivers for callgate's
 * tests and benches, so our DSP is checked against code we did not write.
 * Audio is raw signed 16-bit little-endian mono at 8 kHz on stdin/stdout.
 *
 *   spandsp_tool dtmf-tx DIGITS LEVEL_DBM0 TWIST_DB ON_MS OFF_MS   > audio
 *   spandsp_tool dtmf-rx                                          < audio  (prints digits)
 *   spandsp_tool adsi-tx STANDARD   < message bytes               > audio
 *   spandsp_tool adsi-rx STANDARD   < audio   (prints one hex line per message)
 *   spandsp_tool tone-tx F1 L1 F2 L2 D1 D2 D3 D4 REPEAT SAMPLES   > audio
 *
 * STANDARD is one of class (Bell 202, GR-30), clip (ETSI V.23), aclip,
 * jclip, clip-dtmf. For the FSK standards the message is type, length, body
 * without the checksum, which spandsp appends; for clip-dtmf it is the digit
 * string.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <inttypes.h>
#include <spandsp.h>

#define CHUNK 160

static int write_audio(const int16_t *amp, int n)
{
    return fwrite(amp, sizeof(int16_t), (size_t) n, stdout) == (size_t) n ? 0 : -1;
}

static int standard_code(const char *name)
{
    if (strcmp(name, "class") == 0) return ADSI_STANDARD_CLASS;
    if (strcmp(name, "clip") == 0) return ADSI_STANDARD_CLIP;
    if (strcmp(name, "aclip") == 0) return ADSI_STANDARD_ACLIP;
    if (strcmp(name, "jclip") == 0) return ADSI_STANDARD_JCLIP;
    if (strcmp(name, "clip-dtmf") == 0) return ADSI_STANDARD_CLIP_DTMF;
    fprintf(stderr, "spandsp_tool: unknown standard %s\n", name);
    exit(2);
}

static int cmd_dtmf_tx(char **argv)
{
    dtmf_tx_state_t *s = dtmf_tx_init(NULL);
    int16_t amp[CHUNK];
    int n;

    dtmf_tx_set_level(s, atoi(argv[1]), atoi(argv[2]));
    dtmf_tx_set_timing(s, atoi(argv[3]), atoi(argv[4]));
    dtmf_tx_put(s, argv[0], -1);
    while ((n = dtmf_tx(s, amp, CHUNK)) > 0)
        write_audio(amp, n);
    dtmf_tx_free(s);
    return 0;
}

static void digits_seen(void *user_data, const char *digits, int len)
{
    (void) user_data;
    fwrite(digits, 1, (size_t) len, stdout);
}

static int cmd_dtmf_rx(void)
{
    dtmf_rx_state_t *s = dtmf_rx_init(NULL, digits_seen, NULL);
    int16_t amp[CHUNK];
    size_t n;

    while ((n = fread(amp, sizeof(int16_t), CHUNK, stdin)) > 0)
        dtmf_rx(s, amp, (int) n);
    printf("\n");
    dtmf_rx_free(s);
    return 0;
}

static int cmd_adsi_tx(char **argv)
{
    adsi_tx_state_t *s = adsi_tx_init(NULL, standard_code(argv[0]));
    uint8_t msg[256];
    int16_t amp[CHUNK];
    int len = (int) fread(msg, 1, sizeof(msg) - 1, stdin);
    int n;

    if (adsi_tx_put_message(s, msg, len) <= 0) {
        fprintf(stderr, "spandsp_tool: message refused\n");
        return 1;
    }
    while ((n = adsi_tx(s, amp, CHUNK)) > 0)
        write_audio(amp, n);
    adsi_tx_free(s);
    return 0;
}

static void message_seen(void *user_data, const uint8_t *msg, int len)
{
    (void) user_data;
    for (int i = 0; i < len; i++)
        printf("%02x", msg[i]);
    printf("\n");
}

static int cmd_adsi_rx(char **argv)
{
    adsi_rx_state_t *s = adsi_rx_init(NULL, standard_code(argv[0]), message_seen, NULL);
    int16_t amp[CHUNK];
    size_t n;

    while ((n = fread(amp, sizeof(int16_t), CHUNK, stdin)) > 0)
        adsi_rx(s, amp, (int) n);
    adsi_rx_free(s);
    return 0;
}

static int cmd_tone_tx(char **argv)
{
    tone_gen_descriptor_t *d;
    tone_gen_state_t *s;
    int16_t amp[CHUNK];
    long remaining = atol(argv[9]);

    d = tone_gen_descriptor_init(NULL, atoi(argv[0]), atoi(argv[1]), atoi(argv[2]), atoi(argv[3]),
                             atoi(argv[4]), atoi(argv[5]), atoi(argv[6]), atoi(argv[7]),
                             atoi(argv[8]));
    s = tone_gen_init(NULL, d);
    while (remaining > 0) {
        int want = remaining < CHUNK ? (int) remaining : CHUNK;
        int n = tone_gen(s, amp, want);
        if (n < want)
            memset(amp + n, 0, sizeof(int16_t) * (size_t) (want - n));
        write_audio(amp, want);
        remaining -= want;
    }
    tone_gen_free(s);
    tone_gen_descriptor_free(d);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 7 && strcmp(argv[1], "dtmf-tx") == 0)
        return cmd_dtmf_tx(argv + 2);
    if (argc >= 2 && strcmp(argv[1], "dtmf-rx") == 0)
        return cmd_dtmf_rx();
    if (argc >= 3 && strcmp(argv[1], "adsi-tx") == 0)
        return cmd_adsi_tx(argv + 2);
    if (argc >= 3 && strcmp(argv[1], "adsi-rx") == 0)
        return cmd_adsi_rx(argv + 2);
    if (argc >= 12 && strcmp(argv[1], "tone-tx") == 0)
        return cmd_tone_tx(argv + 2);
    fprintf(stderr, "usage: spandsp_tool dtmf-tx|dtmf-rx|adsi-tx|adsi-rx|tone-tx ...\n");
    return 2;
}
