/* Test support for the data kinds (tests/datagen.h). */
#include "tests/datagen.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <png.h>

void datagen_python(const char *dir, const char *code)
{
    char path[512], cmd[1200];
    snprintf(path, sizeof path, "%s/gen.py", dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "cannot write %s", path);
    fprintf(f, "import os, numpy as np, h5py\nos.chdir(%s%s%s)\n%s", "'", dir, "'", code);
    fclose(f);
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s", path);
    int st = system(cmd);
    cr_assert_eq(st, 0, "the generator failed (status %d):\n%s", st, code);
}

void datagen_png(const char *path, int w, int h, int c, const uint8_t *px)
{
    static const int types[5] = {0, PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_COLOR_TYPE_RGB,
                                 PNG_COLOR_TYPE_RGB_ALPHA};
    FILE *f = fopen(path, "wb");
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    cr_assert(f && png && info, "cannot write %s", path);
    cr_assert(!setjmp(png_jmpbuf(png)), "libpng failed writing %s", path);
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, types[c], PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < h; y++)
        png_write_row(png, px + (size_t)y * w * c);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    fclose(f);
}

void datagen_jpeg(const char *path, int w, int h, int c, const uint8_t *px, int quality)
{
    struct jpeg_compress_struct cinfo;
    struct jpeg_error_mgr jerr;
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "cannot write %s", path);
    cinfo.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&cinfo);
    jpeg_stdio_dest(&cinfo, f);
    cinfo.image_width = (JDIMENSION)w, cinfo.image_height = (JDIMENSION)h;
    cinfo.input_components = c, cinfo.in_color_space = c == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, quality, TRUE);
    for (int k = 0; k < cinfo.num_components; k++) /* no chroma subsampling: colours as written, but for rounding */
        cinfo.comp_info[k].h_samp_factor = cinfo.comp_info[k].v_samp_factor = 1;
    jpeg_start_compress(&cinfo, TRUE);
    while (cinfo.next_scanline < cinfo.image_height) {
        JSAMPROW row = (JSAMPROW)(px + (size_t)cinfo.next_scanline * w * c);
        jpeg_write_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    fclose(f);
}

void datagen_spec(DataSpec *ds, int kind)
{
    const DataKindOps *ops = data_kinds[kind];
    memset(ds, 0, sizeof *ds);
    ds->id = kind;
    snprintf(ds->kind, sizeof ds->kind, "%s", ops->name);
    for (int k = 0; k < ops->nargs; k++) {
        const ArgSpec *a = &ops->args[k];
        if (a->type == AT_STR || a->type == AT_SHAPE)
            ds->arg[k].str = strdup(a->sdef ? a->sdef : "");
        else
            ds->arg[k].num = a->def;
    }
    ds->batch = 16, ds->shuffle = 1;
}

void datagen_set(DataSpec *ds, const char *key, const char *str, double num)
{
    int k = data_arg_index(ds, key);
    cr_assert(k >= 0, "%s has no argument '%s'", ds->kind, key);
    if (str) {
        free(ds->arg[k].str);
        ds->arg[k].str = strdup(str);
    } else {
        ds->arg[k].num = num;
    }
    ds->given |= 1u << k;
}

void datagen_load(DataSpec *ds, DataSplit split, long long limit, int stream, Dataset *d)
{
    char err[4096] = "";
    if (ds->classes == 0)
        cr_assert_eq(data_probe(ds, err, sizeof err), 0, "probe: %s", err);
    cr_assert_eq(data_kinds[ds->id]->load(ds, split, limit, stream, d, err, sizeof err), 0, "load: %s", err);
}

const char *datagen_error(DataSpec *ds, int stream)
{
    static char err[4096];
    Dataset d;
    err[0] = '\0';
    if (data_probe(ds, err, sizeof err) < 0)
        return err;
    if (data_kinds[ds->id]->load(ds, DATA_TRAIN, 0, stream, &d, err, sizeof err) < 0)
        return err;
    dataset_free(&d);
    return err;
}
